"""`GMSACompressor`: a LangChain document compressor whose output documents carry soft tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..engine import GMSAEngine, resolve_engine
from ..engine.checks import check_compression_options


class GMSACompressor(BaseDocumentCompressor):
    """Turn retrieved documents into GMSA soft tokens that `ChatGMSA` reads as embeddings.

    Each output document keeps its metadata and id, adds ``gmsa_source_tokens``, ``gmsa_soft_tokens``,
    ``gmsa_rate`` and ``gmsa_original_text``, and its ``page_content`` becomes a compact reference
    (``<gmsa:...>``) that survives any prompt template or ``"\\n\\n".join``.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from gmsa_integrations.langchain import ChatGMSA, GMSACompressor

            compressor = GMSACompressor(engine=engine, rate=4)
            retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
            docs = retriever.invoke("Who founded Orvan Tools?")
            ChatGMSA(engine=engine).invoke(docs[0].page_content + "\\nQuestion: Who founded it?\\nAnswer:")
    """

    engine: GMSAEngine | None = Field(default=None, exclude=True)
    """The `GMSAEngine` that compresses (``None``: the embedded default model)."""
    rate: int = 4
    """Compression rate: ceil(L / rate) soft tokens for a document of L tokens."""
    target_tokens: int | None = None
    """Optional soft-token budget across all documents; low-ranked documents are compressed harder first
    (rank is the input order, or the ``relevance_score``/``score`` metadata when present)."""
    batch_size: int = 16
    """Passages per encoder batch."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, engine: Any) -> GMSAEngine:
        return resolve_engine(engine)

    @model_validator(mode="after")
    def _validate(self) -> GMSACompressor:
        check_compression_options(self.rate, self.target_tokens, self.batch_size)
        return self

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Compress ``documents`` (in order); ``query`` is unused: GMSA compression is query-independent."""
        docs = list(documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, Document):
                raise TypeError(f"documents[{i}] must be a langchain Document, got {type(doc).__name__}")
        if not docs:
            return []
        scores = [float(d.metadata.get("relevance_score", d.metadata.get("score", -i))) for i, d in enumerate(docs)]
        passages = self.engine.compress_passages(
            [d.page_content for d in docs],
            scores,
            self.rate,
            target_tokens=self.target_tokens,
            batch_size=self.batch_size,
        )
        return [
            Document(page_content=p.reference, metadata={**doc.metadata, **p.metadata}, id=doc.id)
            for doc, p in zip(docs, passages, strict=True)
        ]

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async `compress_documents`, run in an executor so the event loop never blocks on the encoder."""
        return await run_in_executor(None, self.compress_documents, documents, query, callbacks)
