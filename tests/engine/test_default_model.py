"""The embedded default model ships inside the package, loads offline, and its soft tokens carry content."""

import json

from gmsa_integrations.engine.engine import DEFAULT_MODEL_DIR

PASSAGES = [
    "According to local records, Zeri Simul was born on 4 March 1969. Zeri Simul works for Toltantan Tools. "
    "Notably, Zeri Simul is a data analyst.",
    "Sonmulhaven is a town in Titul. About 120,000 people live in Sonmulhaven. The Kessar River runs past "
    "Sonmulhaven, and visitors come to see the Pelno Bridge.",
]


def test_weights_are_small_half_precision_safetensors_with_a_model_card():
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    config = json.loads((DEFAULT_MODEL_DIR / "backbone" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "float16"
    assert "## Recipe" in (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()


def test_loads_offline_as_float32_with_a_keft_decoder(default_engine):
    assert str(default_engine.dtype) == "torch.float32"
    assert default_engine.config.paradigm == "group-merging"
    assert default_engine.model.has_decoder_overrides  # soft-token decoder beside the original backbone


def test_compresses_and_answers_offline_with_token_counts(default_engine):
    soft = default_engine.compress(PASSAGES, rate=4)
    assert [sp.num_tokens for sp in soft] == [-(-default_engine.count_tokens(p) // 4) for p in PASSAGES]
    prompt = "\n\n".join(default_engine.reference(sp) for sp in soft) + "\nQuestion: Who is Zeri Simul?\nAnswer:"
    completion = default_engine.complete(prompt, max_new_tokens=8)
    assert completion.soft_tokens == sum(sp.num_tokens for sp in soft)
    assert 0 < completion.output_tokens <= 8 and completion.text.strip()
