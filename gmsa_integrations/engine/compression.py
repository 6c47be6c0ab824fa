"""Texts -> soft tokens: window -> encode -> group merge -> align. The one compression path.

`soft_tokens` works on token ids and is what training differentiates through (`GMSAObjective`) and
inference runs under ``inference_mode`` (`compress_texts`, behind `GMSAEngine.compress`), so the two
cannot drift apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .merging import num_soft_tokens
from .model import GMSAModel
from .soft_prompt import SoftPrompt
from .store import entry_key


def window_size(rate: int, window_tokens: int) -> int:
    """Tokens the encoder reads at once at ``rate``: the largest multiple of ``rate`` that fits in
    ``window_tokens`` (at least ``rate``), so that no merged group straddles two windows."""
    return max(rate, (window_tokens // rate) * rate)


def soft_tokens(
    model: GMSAModel,
    passages: Sequence[torch.Tensor | Sequence[int]],
    rates: Sequence[int],
    *,
    window_tokens: int,
    pad_id: int = 0,
    batch_size: int | None = None,
    progress: Any = None,
    guard: contextlib.AbstractContextManager | None = None,
) -> list[torch.Tensor]:
    """One ``[ceil(L / rate), hidden]`` tensor of soft tokens per passage of token ids.

    A passage longer than the window is split into windows that are encoded and merged separately,
    their groups concatenated in order and aligned together. Windows are batched longest first
    (``batch_size`` at a time; ``None``: all at once) and the result does not depend on how they are
    batched. ``progress`` wraps the list of encoder batches (e.g. ``tqdm``); ``guard`` is held around
    every forward (the engine's lock).
    """
    if len(rates) != len(passages):
        raise ValueError(f"got {len(passages)} passages but {len(rates)} rates")
    guard = guard if guard is not None else contextlib.nullcontext()
    device = model.embed_tokens.weight.device
    windows: list[tuple[int, torch.Tensor, int]] = []  # (passage, token ids, rate)
    for passage, (ids, rate) in enumerate(zip(passages, rates, strict=True)):
        ids = torch.as_tensor(ids, dtype=torch.long, device=device)
        size = window_size(rate, window_tokens)
        windows += [(passage, ids[start : start + size], rate) for start in range(0, len(ids), size)]
    order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
    step = batch_size or max(len(order), 1)
    batches = [order[i : i + step] for i in range(0, len(order), step)]
    merged_windows: list[torch.Tensor | None] = [None] * len(windows)
    for batch in progress(batches) if progress is not None else batches:
        lengths = torch.tensor([len(windows[w][1]) for w in batch], device=device)
        input_ids = nn.utils.rnn.pad_sequence([windows[w][1] for w in batch], batch_first=True, padding_value=pad_id)
        batch_rates = torch.tensor([windows[w][2] for w in batch], device=device)
        with guard:
            pooled, counts = model.encode_and_merge(input_ids, lengths, batch_rates)
        for row, w in enumerate(batch):
            merged_windows[w] = pooled[row, : int(counts[row])]

    per_passage: list[list[torch.Tensor]] = [[] for _ in passages]
    for (passage, _, _), merged in zip(windows, merged_windows, strict=True):
        per_passage[passage].append(merged)
    merged = [torch.cat(parts) if parts else None for parts in per_passage]
    out = [torch.zeros(0, model.hidden_size, dtype=model.embed_tokens.weight.dtype, device=device) for _ in passages]
    nonempty = sorted((p for p, m in enumerate(merged) if m is not None), key=lambda p: -merged[p].shape[0])
    for start in range(0, len(nonempty), step):
        group = nonempty[start : start + step]
        counts = torch.tensor([merged[p].shape[0] for p in group], device=device)
        padded = nn.utils.rnn.pad_sequence([merged[p] for p in group], batch_first=True)
        with guard:
            aligned = model.align(padded, counts)
        for row, p in enumerate(group):
            out[p] = aligned[row, : int(counts[row])]
    return out


def compress_texts(
    model: GMSAModel,
    tokenizer: Any,
    texts: Sequence[str],
    rate: int,
    *,
    window_tokens: int,
    fingerprint: str,
    batch_size: int = 16,
    show_progress: bool = False,
    guard: contextlib.AbstractContextManager | None = None,
) -> list[SoftPrompt]:
    """`soft_tokens` for texts at inference: tokenised without special tokens, no gradients, one `SoftPrompt`
    per text (keyed for the store and for references)."""
    token_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        def progress(batches: list) -> Any:
            return tqdm(batches, desc="compressing", unit="batch")

    if not model.training:
        with guard if guard is not None else contextlib.nullcontext():
            model.merge_encoder_lora()  # one matmul per layer instead of three while compressing
    with torch.inference_mode():
        tensors = soft_tokens(
            model,
            token_ids,
            [rate] * len(token_ids),
            window_tokens=window_tokens,
            pad_id=pad_id,
            batch_size=batch_size,
            progress=progress,
            guard=guard,
        )
    out = []
    for text, ids, tensor in zip(texts, token_ids, tensors, strict=True):
        assert tensor.shape[0] == num_soft_tokens(len(ids), rate)
        key = entry_key(fingerprint, rate, text)
        out.append(SoftPrompt(tensor.clone(), source_tokens=len(ids), rate=rate, fingerprint=fingerprint, key=key))
    return out
