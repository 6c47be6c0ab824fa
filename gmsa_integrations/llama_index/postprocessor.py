"""`GMSANodePostprocessor`: retrieved nodes -> GMSA soft-token references that `GMSALLM` reads.

Scores, ids and metadata of every node are kept; the response synthesizer packs the references into the
prompt as it would the node texts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, field_validator, model_validator
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..engine import METADATA_KEYS, GMSAEngine, resolve_engine
from ..engine.checks import check_compression_options


class GMSANodePostprocessor(BaseNodePostprocessor):
    """Compress retrieved nodes into GMSA soft tokens.

    Each node keeps its score, id and metadata, gains integer ``gmsa_source_tokens``,
    ``gmsa_soft_tokens``, ``gmsa_rate`` and ``gmsa_original_text`` (all excluded from the LLM and
    embedding metadata text), and its text becomes a reference that `GMSALLM` resolves.

    Example:
        .. code-block:: python

            query_engine = index.as_query_engine(
                llm=GMSALLM(engine=engine),
                node_postprocessors=[GMSANodePostprocessor(engine=engine, rate=4)],
                text_qa_template=GMSA_QA_TEMPLATE,
            )
            query_engine.query("Who founded Orvan Tools?")
    """

    engine: GMSAEngine | None = Field(
        default=None, exclude=True, description="The GMSAEngine (None: the default model)."
    )
    rate: int = Field(default=4, description="Compression rate: ceil(L / rate) soft tokens per node.")
    target_tokens: int | None = Field(
        default=None, description="Soft-token budget across nodes; low-scored nodes are compressed harder first."
    )
    batch_size: int = Field(default=16, description="Nodes per encoder batch.")

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, engine: Any) -> GMSAEngine:
        return resolve_engine(engine)

    @model_validator(mode="after")
    def _validate(self) -> GMSANodePostprocessor:
        check_compression_options(self.rate, self.target_tokens, self.batch_size)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "GMSANodePostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        for i, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                raise TypeError(f"nodes[{i}] must be a NodeWithScore, got {type(item).__name__}")
        if not nodes:
            return []
        scores = [item.score if item.score is not None else -float(i) for i, item in enumerate(nodes)]
        passages = self.engine.compress_passages(
            [item.node.get_content() for item in nodes],
            scores,
            self.rate,
            target_tokens=self.target_tokens,
            batch_size=self.batch_size,
        )
        out = []
        for item, passage in zip(nodes, passages, strict=True):
            node = item.node.model_copy(deep=True)
            node.set_content(passage.reference)
            node.metadata.update(passage.metadata)
            for keys in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                keys.extend(k for k in METADATA_KEYS if k not in keys)
            out.append(NodeWithScore(node=node, score=item.score))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
