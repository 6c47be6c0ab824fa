"""Group merging: mean-pool every ``rate`` consecutive hidden states into one vector."""

from __future__ import annotations

import torch


def num_soft_tokens(length: int, rate: int) -> int:
    """ceil(length / rate): the number of groups a context of ``length`` tokens is merged into."""
    return -(-length // rate)


def group_merge(
    hidden: torch.Tensor, lengths: torch.Tensor, rate: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pool consecutive groups of ``rate`` real tokens of each row of a right-padded batch.

    Args:
        hidden: ``[batch, seq, dim]`` encoder states; row ``b`` holds ``lengths[b]`` real tokens first.
        lengths: ``[batch]`` number of real tokens per row.
        rate: group size r (an int, or a ``[batch]`` tensor for one rate per row); the ``L mod r``
            leftover tokens form one extra, smaller group.

    Returns:
        ``pooled [batch, max_groups, dim]`` (zeros past a row's groups) and ``counts [batch]`` = ceil(L/r).
        Padding never enters an average.
    """
    batch, seq, _ = hidden.shape
    positions = torch.arange(seq, device=hidden.device)
    rates = torch.as_tensor(rate, device=hidden.device).expand(batch)
    counts = (lengths + rates - 1) // rates
    max_groups = max(int(counts.max().item()), 0) if batch else 0
    groups = torch.arange(max_groups, device=hidden.device)
    is_real = positions[None, :] < lengths[:, None]  # [B, T]
    # membership[b, g, t]: token t of row b belongs to group g
    membership = (positions[None, None, :] // rates[:, None, None] == groups[None, :, None]) & is_real[:, None, :]
    weights = membership.to(hidden.dtype)
    sizes = weights.sum(-1, keepdim=True).clamp_min(1.0)
    pooled = torch.bmm(weights / sizes, hidden)
    return pooled, counts
