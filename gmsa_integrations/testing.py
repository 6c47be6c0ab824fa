"""Randomly initialised Llama/Qwen2/Qwen3/Mistral backbones and a character tokenizer, built offline.

Used for tests, for `gmsa bench latency` (weights do not change speed) and for trying the
training recipe on a tiny model before pointing it at a real one.
"""

from __future__ import annotations

import string
from typing import Literal

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

Architecture = Literal["llama", "qwen2", "qwen3", "mistral"]
ARCHITECTURES: tuple[str, ...] = ("llama", "qwen2", "qwen3", "mistral")
"""Every architecture the engine and training are tested on."""

# Real shapes for benchmarks: (layers, hidden, heads, kv_heads, intermediate, vocab)
SHAPES: dict[str, dict[str, int | str]] = {
    "llama-3.2-1b": dict(arch="llama", layers=16, hidden=2048, heads=32, kv_heads=8, intermediate=8192, vocab=128256),
    "llama-3.2-3b": dict(arch="llama", layers=28, hidden=3072, heads=24, kv_heads=8, intermediate=8192, vocab=128256),
    "qwen2.5-0.5b": dict(arch="qwen2", layers=24, hidden=896, heads=14, kv_heads=2, intermediate=4864, vocab=151936),
    "qwen2.5-1.5b": dict(arch="qwen2", layers=28, hidden=1536, heads=12, kv_heads=2, intermediate=8960, vocab=151936),
}


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer over printable ASCII with ``<pad> <s> </s> <unk>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for ch in string.printable:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def random_backbone(
    arch: Architecture = "llama",
    *,
    layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    vocab: int = 104,
    max_positions: int = 2048,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """A randomly initialised causal LM of the given shape (bos=1, eos=2, pad=0)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),  # q/k norms in attention, explicit head_dim
        "mistral": (MistralConfig, MistralForCausalLM),  # sliding-window attention
    }[arch]
    if arch == "qwen3":
        common["head_dim"] = hidden // heads
    config = config_cls(**common)
    torch.manual_seed(seed)
    return model_cls(config).to(dtype).eval()
