"""LlamaIndex integration: `GMSANodePostprocessor` (nodes -> soft tokens) and `GMSALLM` (reads them).

The postprocessor replaces each retrieved node's text by a soft-token reference; the response
synthesizer packs node texts into the prompt as usual; `GMSALLM` resolves the references into the
decoder's ``inputs_embeds``. Scores, ids and metadata of every node are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..engine import Completion, GMSAEngine, resolve_engine
from ..engine.budget import check_positive_int
from ..prompts import QA_TEMPLATE

GMSA_QA_TEMPLATE = PromptTemplate(
    QA_TEMPLATE.replace("{context}", "{context_str}").replace("{question}", "{query_str}")
)
"""``text_qa_template`` in the layout the default model was trained on."""

GMSA_METADATA_KEYS = ["gmsa_source_tokens", "gmsa_soft_tokens", "gmsa_rate", "gmsa_original_text"]


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

    engine: Any = Field(default=None, exclude=True, description="The GMSAEngine (None: the default model).")
    rate: int = Field(default=4, description="Compression rate: ceil(L / rate) soft tokens per node.")
    target_tokens: int | None = Field(
        default=None, description="Soft-token budget across nodes; low-scored nodes are compressed harder first."
    )
    batch_size: int = Field(default=16, description="Nodes per encoder batch.")

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = resolve_engine(self.engine)
        check_positive_int("rate", self.rate)
        check_positive_int("batch_size", self.batch_size)
        if self.target_tokens is not None:
            check_positive_int("target_tokens", self.target_tokens)

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
        engine: GMSAEngine = self.engine
        texts = [item.node.get_content() for item in nodes]
        scores = [item.score if item.score is not None else -float(i) for i, item in enumerate(nodes)]
        soft = engine.compress_ranked(
            texts, scores, self.rate, target_tokens=self.target_tokens, batch_size=self.batch_size
        )
        out = []
        for item, text, sp in zip(nodes, texts, soft, strict=True):
            node = item.node.model_copy(deep=True)
            node.set_content(engine.reference(sp))
            node.metadata.update(
                gmsa_source_tokens=sp.source_tokens,
                gmsa_soft_tokens=sp.num_tokens,
                gmsa_rate=sp.rate,
                gmsa_original_text=text,
            )
            for keys in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                keys.extend(k for k in GMSA_METADATA_KEYS if k not in keys)
            out.append(NodeWithScore(node=node, score=item.score))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)


class GMSALLM(CustomLLM):
    """A LlamaIndex LLM served by a `GMSAEngine` decoder; soft-token references in prompts become embeddings.

    Plain-text prompts are answered by the backbone as it was before KEFT (the full-context path).

    Example:
        .. code-block:: python

            llm = GMSALLM(engine=engine, max_new_tokens=32)
            llm.complete("Where is Orvan Tools based?")
    """

    engine: Any = Field(default=None, exclude=True, description="The GMSAEngine (None: the default model).")
    max_new_tokens: int = Field(default=64, description="Maximum number of tokens to generate.")
    temperature: float = Field(default=0.0, description="Sampling temperature; 0 is greedy.")
    repetition_penalty: float = Field(default=1.0, description="Penalty on tokens already generated.")
    stop: list[str] | None = Field(default=None, description="Stop sequences; the answer ends before the first.")
    model_name: str = Field(default="gmsa", description="Name reported in metadata.")
    _last_usage: Completion | None = PrivateAttr(default=None)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = resolve_engine(self.engine)
        check_positive_int("max_new_tokens", self.max_new_tokens)

    @classmethod
    def class_name(cls) -> str:
        return "GMSALLM"

    @property
    def metadata(self) -> LLMMetadata:
        config = self.engine.model.backbone.config
        return LLMMetadata(
            context_window=int(getattr(config, "max_position_embeddings", 2048)),
            num_output=self.max_new_tokens,
            model_name=self.model_name,
        )

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "max_new_tokens": kwargs.get("max_new_tokens", self.max_new_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "repetition_penalty": kwargs.get("repetition_penalty", self.repetition_penalty),
            "stop": kwargs.get("stop", self.stop),
        }

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        completion = self.engine.complete(prompt, **self._kwargs(kwargs))
        return CompletionResponse(text=completion.text, raw=_usage(completion))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for piece in self.engine.stream_completion(prompt, **self._kwargs(kwargs)):
                text += piece.text
                raw = _usage(piece) if piece.finish_reason is not None else None
                if piece.text or raw:
                    yield CompletionResponse(text=text, delta=piece.text, raw=raw)

        return gen()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        completion = await asyncio.to_thread(self.engine.complete, prompt, **self._kwargs(kwargs))
        return CompletionResponse(text=completion.text, raw=_usage(completion))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        iterator = self.stream_complete(prompt, formatted=formatted, **kwargs)
        done = object()

        async def gen():
            while True:
                item = await asyncio.to_thread(next, iterator, done)
                if item is done:
                    return
                yield item

        return gen()


def _usage(completion: Completion) -> dict[str, Any]:
    return {
        "input_tokens": completion.input_tokens,
        "soft_tokens": completion.soft_tokens,
        "output_tokens": completion.output_tokens,
        "finish_reason": completion.finish_reason,
    }


def build_query_engine(
    index: Any, engine: Any = None, *, rate: int = 4, similarity_top_k: int = 3, **kwargs: Any
) -> Any:
    """A query engine over ``index`` that compresses retrieved nodes and answers with `GMSALLM`."""
    engine = resolve_engine(engine)
    return index.as_query_engine(
        llm=GMSALLM(
            engine=engine, **{k: kwargs.pop(k) for k in ("max_new_tokens", "temperature", "stop") if k in kwargs}
        ),
        node_postprocessors=[GMSANodePostprocessor(engine=engine, rate=rate)],
        similarity_top_k=similarity_top_k,
        text_qa_template=GMSA_QA_TEMPLATE,
        **kwargs,
    )


__all__: Sequence[str] = [
    "GMSALLM",
    "GMSA_QA_TEMPLATE",
    "GMSANodePostprocessor",
    "build_query_engine",
]
