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


def parse_positive_ints(text: str, name: str = "value") -> list[int]:
    """``"4,8"`` -> ``[4, 8]``; anything else (empty, non-integer, < 1) is a ValueError naming ``name``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be comma-separated positive ints such as '4,8', got {text!r}")
    return values


def allocate_rates(lengths: Sequence[int], scores: Sequence[float], rate: int, target_tokens: int | None) -> list[int]:
    """Rates per passage: ``rate`` for all; while the soft tokens exceed ``target_tokens``, rounds go
    from the lowest-scored passage to the highest, doubling one passage's rate at a time, so a
    lower-ranked passage is never compressed less than a higher-ranked one. Ties in score go to the
    later passage (lower rank) first; a passage stops at one soft token.
    """
    rates = [rate] * len(lengths)
    if target_tokens is None:
        return rates

    def total() -> int:
        return sum(-(-n // r) for n, r in zip(lengths, rates, strict=True))

    order = sorted(range(len(lengths)), key=lambda i: (scores[i], -i))
    while total() > target_tokens:
        progressed = False
        for i in order:
            if -(-lengths[i] // rates[i]) > 1:
                rates[i] *= 2
                progressed = True
                if total() <= target_tokens:
                    break
        if not progressed:
            break
    return rates
