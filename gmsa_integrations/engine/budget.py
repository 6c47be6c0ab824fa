"""Per-passage compression rates from a soft-token budget."""

from __future__ import annotations

from collections.abc import Sequence

from .merging import num_soft_tokens


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
        return sum(num_soft_tokens(n, r) for n, r in zip(lengths, rates, strict=True))

    order = sorted(range(len(lengths)), key=lambda i: (scores[i], -i))
    while total() > target_tokens:
        progressed = False
        for i in order:
            if num_soft_tokens(lengths[i], rates[i]) > 1:
                rates[i] *= 2
                progressed = True
                if total() <= target_tokens:
                    break
        if not progressed:
            break
    return rates
