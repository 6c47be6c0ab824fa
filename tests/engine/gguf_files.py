"""Write a small random Llama or Qwen2 as an F32 GGUF file, the way llama.cpp's converter lays it out.

The tokenizer is a byte-level BPE laid out as in SmolLM2's GGUF (same model and pre-tokenizer fields, the
same special tokens first), with the 256 byte symbols and a few merges instead of 49k tokens: transformers
parses a GGUF vocabulary entry by entry, so SmolLM2's would cost ~20 s per load, this one a fraction of it.
The file is a complete model that transformers loads with ``gguf_file=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmsa_integrations.testing import random_backbone

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # unk, bos, eos (and pad) as in SmolLM2
MERGES = ["Ġ t", "Ġ a", "i n", "h e", "r e", "o n", "e r", "a n", "Ġ w", "o r"]


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, the alphabet of a byte-level BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


TOKENS = SPECIAL_TOKENS + _byte_symbols() + [merge.replace(" ", "") for merge in MERGES]
VOCAB = len(TOKENS)


def _add_tokenizer(writer) -> None:
    import gguf

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TOKENS)
    special = len(SPECIAL_TOKENS)
    writer.add_token_types([gguf.TokenType.CONTROL] * special + [gguf.TokenType.NORMAL] * (VOCAB - special))
    writer.add_token_merges(MERGES)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)


def _llama_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    # llama.cpp stores Q/K rotary halves interleaved; transformers undoes this when it reads the file
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def write_random_gguf(path: Path, arch: str = "llama", seed: int = 0) -> torch.nn.Module:
    """Write a 2-layer random ``arch`` model to ``path``; returns the model (for comparisons)."""
    import gguf

    model = random_backbone(arch, layers=2, hidden=64, heads=4, kv_heads=2, vocab=VOCAB, seed=seed)
    config = model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer)

    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    parts = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for i in range(config.num_hidden_layers):
        for hf, gg in parts.items():
            for leaf in ("weight", "bias"):
                names[f"model.layers.{i}.{hf}.{leaf}"] = f"blk.{i}.{gg}.{leaf}"
    for name, tensor in state.items():
        if name not in names:
            raise KeyError(f"no GGUF name for {name}")
        if arch == "llama" and name.endswith("q_proj.weight"):
            tensor = _llama_permute(tensor, config.num_attention_heads)
        elif arch == "llama" and name.endswith("k_proj.weight"):
            tensor = _llama_permute(tensor, config.num_key_value_heads)
        writer.add_tensor(names[name], np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model
