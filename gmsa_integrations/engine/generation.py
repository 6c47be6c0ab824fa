"""The generation front end: prompts and soft prompts -> the decoder's ``inputs_embeds`` -> `Completion` pieces.

`decoder_inputs` builds the exact input (text embeddings and soft tokens in order, left-padded);
`stream_rows` runs `decoding.decode_tokens` over it and turns tokens into text pieces that honour
stop strings. `GMSAEngine.generate`, ``complete``, ``complete_batch``, ``stream`` and
``prompt_embeds`` are thin calls into these two.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from .checks import check_texts
from .decoding import SamplingParams, TextAssembler, decode_tokens, new_kv_cache
from .references import Segment
from .soft_prompt import SoftPrompt

if TYPE_CHECKING:
    from .engine import GMSAEngine

DecoderChoice = Literal["auto", "keft", "original"]


@dataclass(frozen=True)
class Completion:
    """Text generated for one prompt, with token accounting.

    In a stream, every piece is a `Completion` whose ``text`` is the new text; the last piece has
    ``finish_reason`` set and the totals filled in.
    """

    text: str
    input_tokens: int = 0
    """Prompt tokens plus soft tokens (each soft token counts as one token of the decoder's input)."""
    soft_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    """``"stop"`` (EOS or a stop string) or ``"length"`` (max_new_tokens reached)."""


def choose_decoder(decoder: DecoderChoice, reads_soft_tokens: bool) -> Literal["keft", "original"]:
    """The decoder that reads a prompt: ``auto`` is the KEFT-tuned one when the prompt holds soft tokens, and the
    backbone as shipped for plain text (its authors' model, trained on their own prompt format)."""
    if decoder not in ("auto", "keft", "original"):
        raise ValueError(f"decoder must be 'auto', 'keft' or 'original', got {decoder!r}")
    if decoder == "auto":
        return "keft" if reads_soft_tokens else "original"
    return decoder


def prompt_rows(
    engine: GMSAEngine, prompts: Sequence[str], soft_prompts: Sequence[Sequence[SoftPrompt] | None] | None
) -> list[list[Segment]]:
    """Each prompt as its segments: the given soft prompts, then the prompt with its references resolved."""
    prompts = check_texts(prompts, "prompts")
    if soft_prompts is None:
        soft_prompts = [None] * len(prompts)
    if len(soft_prompts) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(soft_prompts)} soft-prompt lists")
    rows: list[list[Segment]] = []
    for prompt, sps in zip(prompts, soft_prompts, strict=True):
        sps = [] if sps is None else sps
        if isinstance(sps, SoftPrompt) or not isinstance(sps, Sequence):
            raise TypeError(f"soft_prompts must be a list of SoftPrompt, got {type(sps).__name__}")
        for sp in sps:
            check_soft_prompt(engine, sp)
        rows.append([*sps, *engine.resolve(prompt)])
    return rows


def check_soft_prompt(engine: GMSAEngine, sp: Any) -> None:
    if not isinstance(sp, SoftPrompt):
        raise TypeError(f"soft_prompts must contain SoftPrompt objects, got {type(sp).__name__}")
    if sp.embeddings.ndim != 2 or sp.hidden_size != engine.model.hidden_size:
        raise ValueError(
            f"soft prompt has shape {tuple(sp.embeddings.shape)}, this engine expects [n, {engine.model.hidden_size}]"
        )
    if sp.fingerprint and sp.fingerprint != engine.fingerprint:
        raise ValueError(
            "soft prompt was made by another GMSA engine (fingerprint "
            f"{sp.fingerprint[:12]} != {engine.fingerprint[:12]}); compress the text with this engine"
        )


def decoder_inputs(
    engine: GMSAEngine, segment_rows: list[list[Segment]]
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """``(embeds, mask, input counts, soft counts)``: left-padded rows of text embeddings and soft tokens in order,
    each row packed contiguously.

    A row without soft tokens is tokenised as one text with the tokenizer's special tokens (what the
    backbone expects); with soft tokens, no special tokens are added (as in training).
    """
    model, device, dtype = engine.model, engine.device, engine.dtype
    rows: list[torch.Tensor] = []
    soft_counts: list[int] = []
    with torch.inference_mode():
        for segments in segment_rows:
            plain = not any(isinstance(seg, SoftPrompt) for seg in segments)
            parts = []
            for seg in segments or [""]:
                if isinstance(seg, SoftPrompt):
                    parts.append(seg.embeddings.to(device=device, dtype=dtype))
                else:
                    ids = engine.tokenizer(seg, add_special_tokens=plain)["input_ids"]
                    parts.append(model.embed_tokens(torch.tensor(ids, dtype=torch.long, device=device)))
            rows.append(torch.cat(parts))
            soft_counts.append(sum(seg.num_tokens for seg in segments if isinstance(seg, SoftPrompt)))
    width = max(r.shape[0] for r in rows)
    if width == 0:
        raise ValueError("nothing to generate from: the prompt and the soft prompts are all empty")
    embeds = torch.zeros(len(rows), width, model.hidden_size, dtype=dtype, device=device)
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row.shape[0]:
            embeds[i, width - row.shape[0] :] = row
            mask[i, width - row.shape[0] :] = 1
    return embeds, mask, [r.shape[0] for r in rows], soft_counts


def stream_rows(
    engine: GMSAEngine,
    rows: list[list[Segment]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    stop: Sequence[str] | str | None = None,
    seed: int | None = None,
    decoder: DecoderChoice = "auto",
    ignore_eos: bool = False,
) -> Iterator[list[Completion | None]]:
    """Per step, one `Completion` piece per row (``None`` where a row has nothing new); a row's last piece has
    its ``finish_reason`` and token counts."""
    if isinstance(stop, str):
        stop = [stop]
    params = SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        stop=tuple(stop or ()),
        seed=seed,
    )
    decoder = choose_decoder(decoder, any(isinstance(seg, SoftPrompt) for row in rows for seg in row))

    embeds, mask, input_counts, soft_counts = decoder_inputs(engine, rows)
    eos_ids = set() if ignore_eos else engine.stop_token_ids
    assemblers = [TextAssembler(_text_decoder(engine.tokenizer), params.stop) for _ in rows]
    finished = [False] * len(rows)
    reported = [False] * len(rows)

    def guard() -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(engine.lock)
        if decoder == "original":
            stack.enter_context(engine.model.original_decoder())
        stack.enter_context(torch.inference_mode())
        return stack

    def final(row: int, reason: str, text: str) -> Completion:
        reported[row] = True
        return Completion(text, input_counts[row], soft_counts[row], len(assemblers[row].token_ids), reason)

    forward = functools.partial(
        _forward, engine.model.backbone, new_cache=new_kv_cache(engine.model.backbone.config, max_new_tokens)
    )
    embed = functools.partial(_embed, engine.model.embed_tokens)
    for tokens in decode_tokens(forward, embed, embeds, mask, eos_ids, params, guard, finished):
        pieces: list[Completion | None] = []
        for row, token in enumerate(tokens):
            if reported[row]:
                pieces.append(None)
            elif token is None:  # EOS
                pieces.append(final(row, "stop", assemblers[row].finish()))
            else:
                text = assemblers[row].push(token)
                if assemblers[row].stopped:
                    finished[row] = True
                    pieces.append(final(row, "stop", text))
                else:
                    pieces.append(Completion(text) if text else None)
        if any(p is not None for p in pieces):
            yield pieces
    tail = [None if reported[row] else final(row, "length", assemblers[row].finish()) for row in range(len(rows))]
    if any(p is not None for p in tail):
        yield tail


def continuation_log_probs(
    engine: GMSAEngine, rows: list[list[Segment]], continuations: Sequence[str], decoder: DecoderChoice = "auto"
) -> list[torch.Tensor]:
    """Teacher-forced ``log p`` of each token of ``continuations[i]`` read after the input of ``rows[i]`` (built as
    `decoder_inputs` builds it for generation), one 1-D tensor per row.

    One forward pass per row, with the LM head applied only at the continuation's positions.
    """
    if len(continuations) != len(rows):
        raise ValueError(f"got {len(rows)} prompts but {len(continuations)} continuations")
    check_texts(continuations, "continuations")
    chosen = choose_decoder(decoder, any(isinstance(seg, SoftPrompt) for row in rows for seg in row))
    scores = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(engine.lock)
        if chosen == "original":
            stack.enter_context(engine.model.original_decoder())
        stack.enter_context(torch.inference_mode())
        for row, text in zip(rows, continuations, strict=True):
            ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError("a continuation has no tokens: nothing to score")
            prompt, _, _, _ = decoder_inputs(engine, [row])
            target = torch.tensor(ids, dtype=torch.long, device=engine.device)
            embeds = torch.cat([prompt[0], engine.model.embed_tokens(target)])[None]
            # the logit at position t scores token t + 1: keep the prompt's last position and all but the final one
            logits = engine.model.backbone(inputs_embeds=embeds, logits_to_keep=len(ids) + 1).logits[0, :-1]
            scores.append(torch.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1).cpu())
    return scores


def _forward(
    backbone: Any, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, new_cache: Any = None
) -> tuple[torch.Tensor, Any]:
    out = backbone(
        inputs_embeds=embeds,
        # without padding the mask is all ones: skip building a 4-D mask at every step
        attention_mask=None if bool(mask.all()) else mask,
        position_ids=positions,
        past_key_values=cache if cache is not None else new_cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1], out.past_key_values


def _embed(embed_tokens: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return embed_tokens(ids)


def _text_decoder(tokenizer: Any) -> Any:
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    return decode
