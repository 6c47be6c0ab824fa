"""`ChatGMSA`: a LangChain chat model whose prompts may carry GMSA soft-token references."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..engine import Completion, GMSAEngine, resolve_engine
from ..engine.checks import check_positive_int


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(block["text"])
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"ChatGMSA reads text only; got a {kind!r} content block")
    return "".join(parts)


def _usage(completion: Completion) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=completion.input_tokens,
        output_tokens=completion.output_tokens,
        total_tokens=completion.input_tokens + completion.output_tokens,
    )


class ChatGMSA(BaseChatModel):
    """A chat model served by a `GMSAEngine` decoder that reads soft tokens as embeddings.

    Soft-token references (from `GMSACompressor`) anywhere in the messages are replaced by their
    soft tokens in the decoder's ``inputs_embeds``; plain-text prompts are served by the backbone as it
    was before KEFT, so the full-text path is your original model. Usage metadata counts each soft token
    as one input token.

    Example:
        .. code-block:: python

            from gmsa_integrations.langchain import ChatGMSA

            llm = ChatGMSA(engine=engine, max_tokens=32)
            llm.invoke("Where is Orvan Tools based?")
            for chunk in llm.stream(prompt_with_references):
                print(chunk.content, end="")
    """

    engine: GMSAEngine | None = Field(default=None, exclude=True)
    """The `GMSAEngine` (``None``: the embedded default model)."""
    max_tokens: int = 64
    """Maximum number of tokens to generate."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy decoding."""
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: list[str] | None = None
    """Stop sequences; generation ends before the first one."""
    seed: int | None = None
    decoder: Literal["auto", "keft", "original"] = "auto"
    """``auto``: the KEFT-tuned decoder when the prompt holds soft tokens, the backbone as shipped otherwise;
    ``keft`` also for plain text (e.g. a full-context tuned baseline), ``original`` always the backbone."""
    chat_template: Literal["auto", "always", "never"] = "auto"
    """Whether the messages are wrapped in the tokenizer's chat template. ``auto``: only when the backbone as
    shipped reads them (plain text, ``decoder`` auto or original), since that is the format its authors
    trained it on; a prompt read by the KEFT-tuned decoder is sent as the raw text that GMSA training used
    (``[soft tokens]\nQuestion: ...\nAnswer:``), which a chat template would change."""
    model_name: str = "gmsa"
    """Name reported in response metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, engine: Any) -> GMSAEngine:
        return resolve_engine(engine)

    @model_validator(mode="after")
    def _validate(self) -> ChatGMSA:
        check_positive_int("max_tokens", self.max_tokens)
        return self

    @property
    def _llm_type(self) -> str:
        return "gmsa"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _prompt(self, messages: list[BaseMessage], decoder: str) -> str:
        if not messages:
            raise ValueError("ChatGMSA needs at least one message")
        engine = self.engine
        texts = [_text(m) for m in messages]
        decoder = engine.decoder_for("\n".join(texts), decoder)
        template = getattr(engine.tokenizer, "chat_template", None)
        if template and (self.chat_template == "always" or (self.chat_template == "auto" and decoder == "original")):
            turns = [{"role": _role(m), "content": text} for m, text in zip(messages, texts, strict=True)]
            return engine.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return "\n".join(texts)

    def _kwargs(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "max_new_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": kwargs.get("top_p", self.top_p),
            "repetition_penalty": kwargs.get("repetition_penalty", self.repetition_penalty),
            "stop": stop if stop is not None else self.stop,
            "seed": kwargs.get("seed", self.seed),
            "decoder": kwargs.get("decoder", self.decoder),
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self._kwargs(stop, kwargs)
        completion = self.engine.complete(self._prompt(messages, options["decoder"]), **options)
        message = AIMessage(
            content=completion.text,
            usage_metadata=_usage(completion),
            response_metadata={"finish_reason": completion.finish_reason, "model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self._kwargs(stop, kwargs)
        for piece in self.engine.stream_completion(self._prompt(messages, options["decoder"]), **options):
            final = piece.finish_reason is not None
            message = AIMessageChunk(
                content=piece.text,
                usage_metadata=_usage(piece) if final else None,
                response_metadata={"finish_reason": piece.finish_reason, "model_name": self.model_name}
                if final
                else {},
                chunk_position="last" if final else None,
            )
            chunk = ChatGenerationChunk(message=message)
            if run_manager and piece.text:
                run_manager.on_llm_new_token(piece.text, chunk=chunk)
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await run_in_executor(None, self._generate, messages, stop, None, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        iterator = self._stream(messages, stop, None, **kwargs)
        done = object()
        while True:
            chunk = await run_in_executor(None, next, iterator, done)
            if chunk is done:
                break
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}.get(message.type, "user")
