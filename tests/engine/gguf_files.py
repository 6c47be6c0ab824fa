"""Write a small random Llama or Qwen2 as an F32 GGUF file, the way llama.cpp's converter lays it out.

The tokenizer fields are copied from the default backbone's GGUF (SmolLM2's byte-level BPE), so the file
is a complete model that transformers loads with ``gguf_file=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmsa_integrations.engine.loading import default_backbone_path
from gmsa_integrations.testing import random_backbone

TOKENIZER_FIELDS = (
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
)
VOCAB = 49152


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
    reader = gguf.GGUFReader(str(default_backbone_path()))
    for key in TOKENIZER_FIELDS:
        field = reader.fields[key]
        value = field.contents()
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, kind, sub_type=sub)

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
