"""LangChain integration: `GMSACompressor` (documents -> soft tokens) and `ChatGMSA` (reads them).

Needs ``pip install 'gmsa-integrations[langchain]'``.
"""

from ..extras import require

require("langchain_core", "langchain")
require("faiss", "langchain")

from .chains import GMSA_RAG_PROMPT, create_gmsa_rag_chain, format_docs
from .chat_models import ChatGMSA
from .compressors import GMSACompressor
from .vectorstores import FaissVectorStore, MiniLMEmbeddings

__all__ = [
    "GMSA_RAG_PROMPT",
    "ChatGMSA",
    "FaissVectorStore",
    "GMSACompressor",
    "MiniLMEmbeddings",
    "create_gmsa_rag_chain",
    "format_docs",
]
