"""The embedded default model ships inside the package, loads offline, and does its job."""

import json

from gmsa_integrations.engine.engine import DEFAULT_MODEL_DIR
from gmsa_integrations.evaluation import bleu, exact_match
from gmsa_integrations.prompts import PASSAGE_SEPARATOR, QA_TEMPLATE

HELD_OUT_PASSAGE = (
    "According to local records, Zeri Simul was born on 4 March 1969. Zeri Simul works for Toltantan Tools. "
    "Notably, Zeri Simul is a data analyst."
)


def test_weights_are_small_half_precision_safetensors():
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    config = json.loads((DEFAULT_MODEL_DIR / "backbone" / "config.json").read_text())
    assert config["dtype"] == "float16"
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").is_file()


def test_loads_offline_in_float32_for_cpu(default_engine):
    assert str(default_engine.dtype) == "torch.float32"
    assert default_engine.config.paradigm == "group-merging"
    assert default_engine.model.has_decoder_overrides  # KEFT-tuned decoder beside the original


def test_reconstructs_an_unseen_passage_from_4x_soft_tokens(default_engine):
    [soft] = default_engine.compress([HELD_OUT_PASSAGE], rate=4)
    restated = default_engine.generate(
        default_engine.config.ae_instruction, [soft], max_new_tokens=soft.source_tokens + 8
    )
    assert bleu([restated.strip()], [HELD_OUT_PASSAGE]) > 0.5, restated


def test_answers_held_out_questions_from_gold_passages(default_engine):
    passages = [
        HELD_OUT_PASSAGE,
        "Toltantan Tools was founded in 1987 by Mira Kolte. Toltantan Tools is based in Sukalwick.",
    ]
    soft = default_engine.compress(passages, rate=4)
    context = PASSAGE_SEPARATOR.join(default_engine.reference(sp) for sp in soft)
    questions = {
        "Which company does Zeri Simul work for?": "Toltantan Tools",
        "Who founded Toltantan Tools?": "Mira Kolte",
    }
    answers = {
        q: default_engine.generate(QA_TEMPLATE.format(context=context, question=q), max_new_tokens=16, stop=["\n"])
        for q in questions
    }
    assert sum(exact_match(answers[q], [gold]) for q, gold in questions.items()) >= 1, answers
