import pytest
import torch

from gmsa_integrations.engine.merging import group_merge, num_soft_tokens


def hand_pool(row: torch.Tensor, length: int, rate: int) -> torch.Tensor:
    groups = [row[s : min(s + rate, length)].mean(0) for s in range(0, length, rate)]
    return torch.stack(groups) if groups else row.new_zeros(0, row.shape[-1])


@pytest.mark.parametrize("rate", [1, 2, 3, 4, 8])
def test_group_merge_matches_hand_computed_means_and_ignores_padding(rate):
    torch.manual_seed(0)
    lengths = torch.tensor([13, 8, 1, 0])
    hidden = torch.randn(4, 13, 5)
    hidden[1, 8:] = 1e6  # padding values must never reach an average
    pooled, counts = group_merge(hidden, lengths, rate)
    for b, length in enumerate(lengths.tolist()):
        assert counts[b] == num_soft_tokens(length, rate) == -(-length // rate)
        expected = hand_pool(hidden[b], length, rate)
        torch.testing.assert_close(pooled[b, : counts[b]], expected)


def test_remainder_group_is_the_mean_of_the_leftover_tokens():
    hidden = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1)
    pooled, counts = group_merge(hidden, torch.tensor([10]), 4)
    assert counts.tolist() == [3]
    assert pooled[0, :, 0].tolist() == [1.5, 5.5, 8.5]  # groups 0-3, 4-7 and the 2 leftovers 8-9
