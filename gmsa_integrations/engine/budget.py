"""Per-passage compression rates from a soft-token budget, and the argument checks adapters share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def allocate_rates(lengths: Sequence[int], scores: Sequence[float], rate: int, target_tokens: int | None) -> list[int]:
    """Rates per passage: ``rate`` for all, then doubled for the lowest-scored passages first until the
    total number of soft tokens fits ``target_tokens`` (or every passage is down to one soft token).

    Ties in score go to the later passage (lower rank) first.
    """
    rates = [rate] * len(lengths)
    if target_tokens is None:
        return rates

    def total() -> int:
        return sum(-(-n // r) for n, r in zip(lengths, rates, strict=True))

    order = sorted(range(len(lengths)), key=lambda i: (scores[i], -i))
    while total() > target_tokens:
        candidates = [i for i in order if -(-lengths[i] // rates[i]) > 1]
        if not candidates:
            break
        rates[candidates[0]] *= 2
    return rates
