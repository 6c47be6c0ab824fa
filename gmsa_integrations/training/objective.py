"""The training objective: batches of (passages, prompt, target) -> cross-entropy on the target.

`GMSACollator` turns validated rows into padded tensors, sampling one compression rate per sample.
`GMSAObjective` compresses the passages with the engine's own `soft_tokens` (the function inference
runs, here with gradients) and runs the decoder over ``[soft][prompt][target+EOS]``, each sample packed
contiguously and right-padded as a whole, with the loss on target tokens only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..data.records import AERow, QARow
from ..engine.compression import soft_tokens
from ..engine.model import GMSAModel, base_model_of
from ..engine.prompts import AE_INSTRUCTION, ANSWER_TEMPLATE, PASSAGE_SEPARATOR, QUESTION_TEMPLATE, first_tokens


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), max(width, 1)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


@dataclass
class GMSACollator:
    """Rows -> tensors. The rate of sample ``i`` is drawn from ``rates`` by a RNG seeded with ``(seed, i)``,
    so a resumed or multi-process run sees the same rate for the same sample."""

    tokenizer: Any
    rates: Sequence[int]
    max_length: int = 512
    instruction: str = AE_INSTRUCTION
    qa_template: str = QUESTION_TEMPLATE
    """Text after the soft tokens in KEFT (default: the layout both adapters send)."""
    answer_template: str = ANSWER_TEMPLATE
    passage_separator: str = PASSAGE_SEPARATOR
    """Text between the soft tokens of consecutive passages (the adapters join passages with it)."""
    seed: int = 0
    context_as_text: bool = False
    """QA rows read their passages as text before the question (the full-context baseline), not as soft tokens."""
    eos_token_id: int | None = None
    """The token every target ends with: the engine's `GMSAEngine.eos_token_id`, the one EOS rule (generation
    stops there and checkpoints record it); required."""

    def __post_init__(self) -> None:
        if not self.rates or any(not isinstance(r, int) or r < 1 for r in self.rates):
            raise ValueError(f"rates must be positive ints, got {list(self.rates)!r}")
        if self.eos_token_id is None:
            raise ValueError("eos_token_id is required (the engine's eos_token_id): GMSA targets end with EOS")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._instruction_ids = self._ids(self.instruction)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def sample_rate(self, index: int) -> int:
        return random.Random(f"{self.seed}:{index}").choice(list(self.rates))

    def __call__(self, items: list[tuple[int, AERow | QARow]]) -> dict[str, torch.Tensor]:
        passages, passage_rates, passage_sample = [], [], []
        prompts, targets = [], []
        for sample, (index, row) in enumerate(items):
            rate = self.sample_rate(index)
            if isinstance(row, AERow):
                text_ids = self._ids(row.text)[: self.max_length]
                contexts, prompt, target = [text_ids], self._instruction_ids, text_ids
            elif self.context_as_text:
                texts = [first_tokens(self.tokenizer, p, self.max_length) for p in row.passages]
                contexts = []
                prompt = self._ids(self.passage_separator.join(texts) + self.qa_template.format(question=row.question))
                target = self._ids(self.answer_template.format(answer=row.answers[0]))
            else:
                contexts = [self._ids(p)[: self.max_length] for p in row.passages]
                prompt = self._ids(self.qa_template.format(question=row.question))
                target = self._ids(self.answer_template.format(answer=row.answers[0]))
            passages += contexts
            passage_rates += [rate] * len(contexts)
            passage_sample += [sample] * len(contexts)
            prompts.append(prompt)
            targets.append([*target, self.eos_token_id])
        passage_ids, passage_lengths = _pad(passages, self.pad_id)
        prompt_ids, prompt_lengths = _pad(prompts, self.pad_id)
        target_ids, target_lengths = _pad(targets, self.pad_id)
        return {
            "passage_ids": passage_ids,
            "passage_lengths": passage_lengths,
            "passage_rates": torch.tensor(passage_rates, dtype=torch.long),
            "passage_sample": torch.tensor(passage_sample, dtype=torch.long),
            "prompt_ids": prompt_ids,
            "prompt_lengths": prompt_lengths,
            "target_ids": target_ids,
            "target_lengths": target_lengths,
            "separator_ids": torch.tensor(self._ids(self.passage_separator), dtype=torch.long),
        }


class GMSAObjective(nn.Module):
    """Wraps a `GMSAModel` so that ``forward(**batch)`` returns ``{"loss": ...}`` (what HF Trainer expects)."""

    def __init__(
        self,
        model: GMSAModel,
        train_compressor: bool,
        window_tokens: int,
        loss_per: Literal["token", "sample"] = "token",
    ) -> None:
        super().__init__()
        if loss_per not in ("token", "sample"):
            raise ValueError(f"loss_per must be 'token' or 'sample', got {loss_per!r}")
        self.model = model
        self.train_compressor = train_compressor
        """False in KEFT: soft tokens are computed without gradients (encoder and LSA frozen)."""
        self.window_tokens = window_tokens
        """The engine's `GMSAEngine.window_tokens`: passages are windowed exactly as at inference."""
        self.loss_per = loss_per
        """``token``: the mean over every target token in the batch; ``sample``: each sample's mean, then their
        mean (`TrainConfig.loss_per`)."""

    def passage_soft_tokens(
        self, passage_ids: torch.Tensor, passage_lengths: torch.Tensor, passage_rates: torch.Tensor
    ) -> list[torch.Tensor]:
        """The soft tokens of each passage in the batch, through the engine's one compression function."""
        passages = [passage_ids[p, : int(n)] for p, n in enumerate(passage_lengths.tolist())]
        return soft_tokens(self.model, passages, passage_rates.tolist(), window_tokens=self.window_tokens)

    def forward(
        self,
        passage_ids: torch.Tensor,
        passage_lengths: torch.Tensor,
        passage_rates: torch.Tensor,
        passage_sample: torch.Tensor,
        prompt_ids: torch.Tensor,
        prompt_lengths: torch.Tensor,
        target_ids: torch.Tensor,
        target_lengths: torch.Tensor,
        separator_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(self.train_compressor and torch.is_grad_enabled()):
            soft = self.passage_soft_tokens(passage_ids, passage_lengths, passage_rates)
        embed = self.model.embed_tokens
        rows, labels = [], []
        for b in range(prompt_ids.shape[0]):
            passages = (passage_sample == b).nonzero().flatten().tolist()
            prompt = prompt_ids[b, : int(prompt_lengths[b])]
            target = target_ids[b, : int(target_lengths[b])]
            parts = []
            for j, p in enumerate(passages):
                if j and separator_ids is not None and separator_ids.numel():
                    parts.append(embed(separator_ids))
                parts.append(soft[p].to(embed.weight.dtype))
            parts += [embed(prompt), embed(target)]
            rows.append(torch.cat(parts))
            n_context = rows[-1].shape[0] - target.shape[0]
            labels.append(torch.cat([target.new_full((n_context,), -100), target]))
        inputs_embeds = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        label_ids = nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100)
        lengths = torch.tensor([r.shape[0] for r in rows], device=inputs_embeds.device)
        attention_mask = (
            torch.arange(inputs_embeds.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        ).long()
        hidden = base_model_of(self.model.backbone)(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        # position t predicts token t+1: score only the positions whose next token is a target token
        next_labels = label_ids[:, 1:]
        selected = next_labels != -100
        logits = self.model.backbone.get_output_embeddings()(hidden.last_hidden_state[:, :-1][selected])
        if self.loss_per == "token":
            return {"loss": F.cross_entropy(logits.float(), next_labels[selected])}
        token_loss = F.cross_entropy(logits.float(), next_labels[selected], reduction="none")
        sample_of_token = selected.nonzero()[:, 0]  # boolean indexing is row-major, and so is nonzero()
        n_rows = selected.shape[0]
        totals = token_loss.new_zeros(n_rows).index_add(0, sample_of_token, token_loss)
        counts = selected.sum(dim=1)
        return {"loss": (totals[counts > 0] / counts[counts > 0]).mean()}
