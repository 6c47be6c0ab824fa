"""LlamaIndex integration: `GMSANodePostprocessor` (nodes -> soft tokens), `GMSALLM` (reads them) and
`TitleLinkRetriever` (a second retrieval hop for two-hop questions).

Needs ``pip install 'gmsa-integrations[llama-index]'``.
"""

from ..extras import require

require("llama_index.core", "llama-index")

from .embeddings import MiniLMEmbedding, faiss_vector_index, load_faiss_index, passage_nodes
from .llms import GMSALLM
from .postprocessor import GMSANodePostprocessor
from .query_engine import GMSA_QA_TEMPLATE, build_query_engine
from .retrievers import TitleLinkRetriever

__all__ = [
    "GMSALLM",
    "GMSA_QA_TEMPLATE",
    "GMSANodePostprocessor",
    "MiniLMEmbedding",
    "TitleLinkRetriever",
    "build_query_engine",
    "faiss_vector_index",
    "load_faiss_index",
    "passage_nodes",
]
