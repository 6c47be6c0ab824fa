"""`TitleLinkRetriever`: a retriever's nodes plus the nodes they mention by title (a second hop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from ..data.links import TitleLinks, check_link_counts


class TitleLinkRetriever(BaseRetriever):
    """Add to what ``retriever`` finds the nodes that its top nodes name by title.

    A two-hop question names only the first entity ("What industry is Ada Lind's employer in?"): retrieval
    by the question finds Ada Lind's node, which names her employer, whose node holds the answer. With titles
    in the nodes' metadata, this retriever follows such mentions, like hyperlinks, and appends the linked
    nodes (``score=None``: they were not retrieved by similarity) after the retrieved ones.

    Args:
        retriever: the first hop, which retrieves by the question.
        nodes: the corpus that links point into (a sequence of nodes, or a docstore's ``{id: node}``),
            each with its title in ``metadata[title_key]``; nodes without one are never linked to.
        follow: how many of the first hop's nodes, best first, have their mentions followed.
        max_linked: at most this many linked nodes are added.

    Example:
        .. code-block:: python

            from gmsa_integrations.llama_index import TitleLinkRetriever, build_query_engine

            retriever = TitleLinkRetriever.from_index(index, similarity_top_k=2, max_linked=2)
            query_engine = build_query_engine(index, engine, rate=4, retriever=retriever)
            query_engine.query("What industry is Ada Lind's employer in?")
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        nodes: Sequence[BaseNode] | Mapping[str, BaseNode],
        *,
        title_key: str = "title",
        follow: int = 1,
        max_linked: int = 2,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        check_link_counts(follow, max_linked)
        if not isinstance(retriever, BaseRetriever):
            raise TypeError(f"retriever must be a LlamaIndex BaseRetriever, got {type(retriever).__name__}")
        corpus = list(nodes.values()) if isinstance(nodes, Mapping) else list(nodes)
        self._by_id: dict[str, BaseNode] = {}
        for i, node in enumerate(corpus):
            if not isinstance(node, BaseNode):
                raise TypeError(f"nodes[{i}] must be a LlamaIndex node, got {type(node).__name__}")
            self._by_id[node.node_id] = node
        self._retriever = retriever
        self._links = TitleLinks({i: n.metadata.get(title_key) for i, n in self._by_id.items()})
        self._follow, self._max_linked = follow, max_linked
        super().__init__(callback_manager=callback_manager)

    @classmethod
    def from_index(cls, index: Any, similarity_top_k: int = 2, **kwargs: Any) -> TitleLinkRetriever:
        """Over a `VectorStoreIndex`: its retriever is the first hop and its docstore the corpus."""
        nodes = index.docstore.docs
        if not nodes:  # vector stores that keep the text themselves leave the docstore empty
            raise ValueError("the index's docstore holds no nodes to link to; pass them: TitleLinkRetriever(r, nodes)")
        return cls(index.as_retriever(similarity_top_k=similarity_top_k), nodes, **kwargs)

    def _with_links(self, hits: list[NodeWithScore]) -> list[NodeWithScore]:
        keyed = [(hit.node.node_id, hit.node.get_content()) for hit in hits]
        linked = self._links.expand(keyed, follow=self._follow, max_linked=self._max_linked)
        return hits + [NodeWithScore(node=self._by_id[i], score=None) for i in linked]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._with_links(self._retriever.retrieve(query_bundle))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._with_links(await self._retriever.aretrieve(query_bundle))
