"""`TitleLinkRetriever`: a retriever's documents plus the documents they mention by title (a second hop)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from ..data.links import TitleLinks


class TitleLinkRetriever(BaseRetriever):
    """Add to what ``retriever`` finds the corpus documents that its top documents name by title.

    A two-hop question names only the first entity ("What industry is Ada Lind's employer in?"): retrieval
    by the question finds Ada Lind's document, which names her employer, whose document holds the answer.
    With titles in the documents' metadata, this retriever follows such mentions, like hyperlinks, and
    appends the linked documents after the retrieved ones. Compressed by `GMSACompressor`, each linked
    document's soft tokens come from the store like any other's.

    Example:
        .. code-block:: python

            from gmsa_integrations.langchain import TitleLinkRetriever, create_gmsa_rag_chain

            docs = [Document(text, id=i, metadata={"title": title}) for i, text, title in corpus]
            store = FaissVectorStore.from_documents(docs, MiniLMEmbeddings())
            retriever = TitleLinkRetriever(
                retriever=store.as_retriever(search_kwargs={"k": 2}), documents=docs, max_linked=2
            )
            chain = create_gmsa_rag_chain(retriever, engine, rate=4)
            chain.invoke("What industry is Ada Lind's employer in?")
    """

    retriever: BaseRetriever
    """The first hop: retrieves by the question."""
    documents: list[Document] = Field(repr=False)
    """The corpus that links point into, each with an ``id`` and its title in ``metadata[title_key]``."""
    title_key: str = "title"
    """The metadata field that holds a document's title; documents without it are never linked to."""
    follow: int = Field(default=1, ge=0)
    """How many of the first hop's documents, best first, have their mentions followed."""
    max_linked: int = Field(default=2, ge=0)
    """At most this many linked documents are added."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _by_id: dict[str, Document] = PrivateAttr(default_factory=dict)
    _links: TitleLinks = PrivateAttr()

    @model_validator(mode="after")
    def _index(self) -> TitleLinkRetriever:
        for i, doc in enumerate(self.documents):
            doc_id = _doc_id(doc)
            if doc_id is None:
                raise ValueError(f"documents[{i}] has no id (set Document.id or metadata['id']): links need one")
            if doc_id in self._by_id:
                raise ValueError(f"documents[{i}] repeats the id {doc_id!r}")
            self._by_id[doc_id] = doc
        self._links = TitleLinks({i: d.metadata.get(self.title_key) for i, d in self._by_id.items()})
        return self

    def _with_links(self, hits: list[Document]) -> list[Document]:
        keyed = [(_doc_id(d) or f"#hit{i}", d.page_content) for i, d in enumerate(hits)]
        texts = {d.page_content for d in hits}
        linked = [self._by_id[i] for i in self._links.expand(keyed, follow=self.follow, max_linked=self.max_linked)]
        return hits + [d for d in linked if d.page_content not in texts]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = self.retriever.invoke(query, config={"callbacks": run_manager.get_child()}, **kwargs)
        return self._with_links(hits)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = await self.retriever.ainvoke(query, config={"callbacks": run_manager.get_child()}, **kwargs)
        return self._with_links(hits)


def _doc_id(doc: Document) -> str | None:
    doc_id = doc.id if doc.id is not None else doc.metadata.get("id")
    return None if doc_id is None else str(doc_id)
