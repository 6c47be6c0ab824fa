"""LangChain integration: `GMSACompressor` (documents -> soft tokens) and `ChatGMSA` (reads them)."""

from .chains import GMSA_RAG_PROMPT, create_gmsa_rag_chain, format_docs
from .chat_models import ChatGMSA
from .compressors import GMSACompressor

__all__ = ["GMSA_RAG_PROMPT", "ChatGMSA", "GMSACompressor", "create_gmsa_rag_chain", "format_docs"]
