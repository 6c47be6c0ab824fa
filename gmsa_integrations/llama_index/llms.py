"""`GMSALLM`: a LlamaIndex LLM served by a `GMSAEngine` decoder; soft-token references in prompts become
embeddings in the decoder's input."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_validator
from llama_index.core.llms import (
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    CustomLLM,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_completion_callback

from ..engine import Completion, GMSAEngine, resolve_engine
from ..engine.checks import check_positive_int


class GMSALLM(CustomLLM):
    """A LlamaIndex LLM served by a `GMSAEngine` decoder; soft-token references in prompts become embeddings.

    Plain-text prompts are answered by the backbone as it was before KEFT (the full-context path).

    Example:
        .. code-block:: python

            llm = GMSALLM(engine=engine, max_new_tokens=32)
            llm.complete("Where is Orvan Tools based?")
    """

    engine: GMSAEngine | None = Field(
        default=None, exclude=True, description="The GMSAEngine (None: the default model)."
    )
    max_new_tokens: int = Field(default=64, description="Maximum number of tokens to generate.")
    temperature: float = Field(default=0.0, description="Sampling temperature; 0 is greedy.")
    repetition_penalty: float = Field(default=1.0, description="Penalty on tokens already generated.")
    stop: list[str] | None = Field(default=None, description="Stop sequences; the answer ends before the first.")
    decoder: Literal["auto", "keft", "original"] = Field(
        default="auto",
        description="auto: the KEFT-tuned decoder when the prompt holds soft tokens, the backbone as shipped "
        "otherwise; keft also for plain text (e.g. a full-context tuned baseline); original: always the backbone.",
    )
    model_name: str = Field(default="gmsa", description="Name reported in metadata.")
    _last_usage: Completion | None = PrivateAttr(default=None)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, engine: Any) -> GMSAEngine:
        return resolve_engine(engine)

    @field_validator("max_new_tokens")
    @classmethod
    def _max_new_tokens(cls, value: int) -> int:
        return check_positive_int("max_new_tokens", value)

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
            "decoder": kwargs.get("decoder", self.decoder),
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
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        iterator = self.stream_complete(prompt, formatted=formatted, **kwargs)
        done = object()

        async def gen() -> CompletionResponseAsyncGen:
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
