"""LangChain integration: `GMSACompressor` (documents -> soft tokens), `ChatGMSA` (reads them) and
`TitleLinkRetriever` (a second retrieval hop for two-hop questions).

Needs ``pip install 'gmsa-integrations[langchain]'``.
"""

from ..extras import require

require("langchain_core", "langchain")
require("faiss", "langchain")

from .chains import GMSA_RAG_PROMPT, create_gmsa_rag_chain, format_docs
from .chat_models import ChatGMSA
from .compressors import GMSACompressor
from .retrievers import TitleLinkRetriever
from .vectorstores import FaissVectorStore, MiniLMEmbeddings

__all__ = [
    "GMSA_RAG_PROMPT",
    "ChatGMSA",
    "FaissVectorStore",
    "GMSACompressor",
    "MiniLMEmbeddings",
    "TitleLinkRetriever",
    "create_gmsa_rag_chain",
    "format_docs",
]
