"""KV-cached decoding over ``inputs_embeds``: greedy or sampled, repetition penalty, stop strings.

Written out (about a hundred lines) rather than delegated to ``model.generate`` so that the
soft-token path, streaming, stop strings and the per-step engine lock are explicit and identical
for batched, single and streamed calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    """HF-style penalty applied to tokens already generated (1.0 disables it)."""
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.repetition_penalty, (int, float)) or self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise TypeError(f"stop must be a list of non-empty strings, got {list(self.stop)!r}")


class _ReservedLayer(DynamicLayer):
    """A KV-cache layer that writes new states into reserved capacity.

    HF's `DynamicLayer` concatenates the whole cache with each new token (a third of CPU decode time
    at 2k tokens); this one allocates prompt + ``reserve`` positions once and hands out views.
    """

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = reserve
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._v = None
        new = key_states.shape[-2]
        if self._k is None or self.length + new > self._k.shape[-2]:
            # first: exactly prompt + reserve; if a call ever outgrows that, double
            growth = max(self.reserve, 1) if self._k is None else max(self.reserve, self.length)
            capacity = self.length + new + growth
            k = key_states.new_empty(*key_states.shape[:-2], capacity, key_states.shape[-1])
            v = value_states.new_empty(*value_states.shape[:-2], capacity, value_states.shape[-1])
            if self.length:
                k[..., : self.length, :] = self._k[..., : self.length, :]
                v[..., : self.length, :] = self._v[..., : self.length, :]
            self._k, self._v = k, v
        self._k[..., self.length : self.length + new, :] = key_states
        self._v[..., self.length : self.length + new, :] = value_states
        self.length += new
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]
        return self.keys, self.values


def new_kv_cache(config: object, reserve: int) -> Cache:
    """A KV cache for one generation call that will add about ``reserve`` tokens after the prompt."""
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        return DynamicCache(config=config)  # sliding-window layers need HF's own layer types
    return Cache(layers=[_ReservedLayer(reserve) for _ in range(config.num_hidden_layers)])


@dataclass
class TextAssembler:
    """Turns a growing list of token ids into text pieces that never change once emitted.

    Text that might still become (part of) a stop string, or an incomplete UTF-8 character, is held
    back; so a stream of pieces joins to exactly the non-streamed result.
    """

    decode: Callable[[list[int]], str]
    stop: tuple[str, ...] = ()
    token_ids: list[int] = field(default_factory=list)
    emitted: int = 0
    stopped: bool = False

    def push(self, token_id: int) -> str:
        self.token_ids.append(token_id)
        return self._advance(final=False)

    def finish(self) -> str:
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if self.stopped:
            return ""
        text = self.decode(self.token_ids)
        cut = min((i for i in (text.find(s, max(0, self.emitted - len(s))) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            piece, self.emitted = text[self.emitted : cut], cut
            return piece
        end = len(text)
        if not final:
            if text.endswith("\ufffd"):
                end -= 1
            for s in self.stop:  # hold back a suffix that could start a stop string
                for k in range(min(len(s) - 1, end - self.emitted), 0, -1):
                    if text[end - k : end] == s[:k]:
                        end -= k
                        break
        piece = text[self.emitted : end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return piece


def _choose(
    logits: torch.Tensor, history: list[list[int]], params: SamplingParams, generator: torch.Generator | None
) -> torch.Tensor:
    if params.repetition_penalty != 1.0:
        for row, seen in enumerate(history):
            if seen:
                idx = torch.tensor(sorted(set(seen)), device=logits.device)
                vals = logits[row, idx]
                logits[row, idx] = torch.where(
                    vals > 0, vals / params.repetition_penalty, vals * params.repetition_penalty
                )
    if params.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < params.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def decode_tokens(
    forward: Callable[..., tuple[torch.Tensor, object]],
    embed: Callable[[torch.Tensor], torch.Tensor],
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    eos_ids: set[int],
    params: SamplingParams,
    step_guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    finished: list[bool] | None = None,
) -> Iterator[list[int | None]]:
    """Yield, per step, the next token of every row (``None`` for rows already finished).

    ``inputs_embeds`` is left-padded; ``forward(inputs_embeds, attention_mask, position_ids, cache)``
    returns ``(last-position logits, cache)``; the first call gets ``cache=None``. ``step_guard``
    wraps each forward (the engine's lock). The caller may set ``finished[row] = True`` (e.g. on a
    stop string) to end a row early.
    """
    batch = inputs_embeds.shape[0]
    device = inputs_embeds.device
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device=device).manual_seed(params.seed)
    cache = None
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    history: list[list[int]] = [[] for _ in range(batch)]
    finished = finished if finished is not None else [False] * batch
    step_embeds, step_positions = inputs_embeds, position_ids
    for _ in range(params.max_new_tokens):
        with step_guard():
            logits, cache = forward(step_embeds, attention_mask, step_positions, cache)
        with torch.inference_mode():
            next_ids = _choose(logits.float(), history, params, generator)
        out: list[int | None] = []
        for row in range(batch):
            token = int(next_ids[row])
            if finished[row]:
                out.append(None)
                continue
            if token in eos_ids:
                finished[row] = True
                out.append(None)
                continue
            history[row].append(token)
            out.append(token)
        yield out
        if all(finished):
            return
        step_embeds = embed(next_ids[:, None])
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        step_positions = step_positions[:, -1:] + 1
