"""LlamaIndex integration: `GMSANodePostprocessor` (nodes -> soft tokens) and `GMSALLM` (reads them)."""

from .base import GMSA_QA_TEMPLATE, GMSALLM, GMSANodePostprocessor, build_query_engine
from .embeddings import MiniLMEmbedding, faiss_vector_index, load_faiss_index

__all__ = [
    "GMSALLM",
    "GMSA_QA_TEMPLATE",
    "GMSANodePostprocessor",
    "MiniLMEmbedding",
    "build_query_engine",
    "faiss_vector_index",
    "load_faiss_index",
]
