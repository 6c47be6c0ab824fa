"""Pretraining a small backbone from scratch (the first step of the default model's recipe).

A byte-level BPE tokenizer is trained on the corpus, then a small Llama is trained as an ordinary
causal LM on passages, on restating a passage after an instruction ("{passage}\\nRestate ...: {passage}",
scored on the copy), and on full-context question answering ("{passages}\\nQuestion: ...\\nAnswer: ...",
scored on the answer). Restating teaches a small model to copy from its context quickly; question
answering makes it a reader: it is the full-context baseline GMSA is compared with, and the decoder
GMSA later learns to feed. ``init`` continues from an earlier backbone (and keeps its tokenizer).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Trainer, TrainingArguments

from ..data.records import AERow, QARow, read_rows
from ..engine.prompts import AE_INSTRUCTION, PASSAGE_SEPARATOR, QA_TEMPLATE
from .trainer import JsonlLogCallback

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def train_tokenizer(texts: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text is encodable) with ``<pad> <s> </s> <unk>`` as ids 0-3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def qa_text(row: QARow) -> tuple[str, str]:
    """(prompt, answer) of a full-context QA example in the shared prompt format."""
    return QA_TEMPLATE.format(context=PASSAGE_SEPARATOR.join(row.passages), question=row.question), row.answers[0]


@dataclass
class PretrainConfig:
    ae_data: str
    qa_data: str
    output_dir: str
    vocab_size: int = 2048
    hidden: int = 256
    layers: int = 8
    heads: int = 4
    intermediate: int = 688
    max_length: int = 512
    max_steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    logging_steps: int = 50
    seed: int = 0
    init: str | None = None
    """Continue from this backbone directory (its tokenizer too) instead of starting from scratch; the
    vocabulary and architecture fields above are then ignored."""
    restate_data: str | None = None
    """Passages (``{"text"}`` rows) for restatement examples; default: ``ae_data``."""
    max_qa_rows: int | None = None
    """Use at most this many QA rows (the first ones)."""
    show_progress: bool = True


class _Examples(Dataset):
    """Token ids with labels; QA examples score only the answer, passages score every token."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerFast, rows: list[Any], max_length: int, restate: list[str] = ()
    ) -> None:
        self.items = []
        eos = tokenizer.eos_token_id
        for text in restate:
            p_ids = tokenizer(f"{text}\n{AE_INSTRUCTION}")["input_ids"]
            c_ids = [*tokenizer(" " + text, add_special_tokens=False)["input_ids"], eos]
            if len(p_ids) + len(c_ids) <= max_length:
                self.items.append((p_ids + c_ids, [-100] * len(p_ids) + c_ids))
        for row in rows:
            if isinstance(row, AERow):
                ids = [*tokenizer(row.text)["input_ids"][: max_length - 1], eos]
                self.items.append((ids, list(ids)))
            else:
                prompt, answer = qa_text(row)
                p_ids = tokenizer(prompt)["input_ids"]
                a_ids = [*tokenizer(" " + answer, add_special_tokens=False)["input_ids"], eos]
                p_ids = p_ids[-(max_length - len(a_ids)) :]
                self.items.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.items[index]


def _collate(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def _llama_config(config: PretrainConfig, vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden,
        intermediate_size=config.intermediate,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )


def pretrain_backbone(config: PretrainConfig) -> Path:
    """Train the tokenizer and the backbone; writes both (safetensors) to ``config.output_dir``."""
    ae_rows = read_rows(config.ae_data, "ae")
    qa_rows = read_rows(config.qa_data, "qa")[: config.max_qa_rows]
    restate = (
        [r.text for r in read_rows(config.restate_data, "ae")] if config.restate_data else [r.text for r in ae_rows]
    )
    torch.manual_seed(config.seed)
    if config.init:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(config.init)
        model = LlamaForCausalLM.from_pretrained(config.init, dtype=torch.float32)
    else:
        tokenizer = train_tokenizer([r.text for r in ae_rows] + [r.question for r in qa_rows], config.vocab_size)
        model = LlamaForCausalLM(_llama_config(config, len(tokenizer)))
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    args = TrainingArguments(
        output_dir=str(output / "trainer"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not config.show_progress,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    dataset = _Examples(tokenizer, [*ae_rows, *qa_rows], config.max_length, restate)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=_collate,
        callbacks=[JsonlLogCallback(output / "log.jsonl")],
    )
    trainer.train()
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / "pretrain_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return output
