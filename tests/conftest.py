"""Shared fixtures: tiny random Llama, Qwen2, Qwen3 and Mistral engines, built offline in well under a second."""

from __future__ import annotations

import functools

import pytest

from gmsa_integrations import GMSAConfig, GMSAEngine
from gmsa_integrations.testing import ARCHITECTURES, char_tokenizer, random_backbone

TINY = GMSAConfig(encoder_layers=2, lsa_layers=1, lora_r=8, lora_alpha=16, max_window_tokens=64)


def make_engine(
    arch: str = "llama", config: GMSAConfig = TINY, seed: int = 0, max_positions: int = 512, **kwargs
) -> GMSAEngine:
    backbone = random_backbone(arch, layers=4, hidden=64, heads=4, kv_heads=2, max_positions=max_positions, seed=seed)
    engine = GMSAEngine.from_backbone(backbone, char_tokenizer(), config, **kwargs)
    # LoRA B starts at zero; perturb it so tests see a non-trivial encoder
    import torch

    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in engine.model.encoder.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    engine.refresh_fingerprint()
    return engine


@pytest.fixture(scope="session", autouse=True)
def gguf_cache(tmp_path_factory):
    """One cache of dequantised GGUF backbones per test session, never the user's: the first load of the
    default backbone fills it, and every later load (subprocesses and notebook kernels inherit it) reads it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GMSA_CACHE_DIR", str(tmp_path_factory.mktemp("gmsa-cache")))
        yield


@pytest.fixture(params=ARCHITECTURES)
def engine(request) -> GMSAEngine:
    return make_engine(request.param)


@pytest.fixture
def llama_engine() -> GMSAEngine:
    return make_engine("llama")


@functools.cache
def load_default_engine() -> GMSAEngine:
    """The embedded default model, loaded once per test session (fixtures and standard suites share it)."""
    return GMSAEngine.from_pretrained()


@pytest.fixture(scope="session")
def default_engine() -> GMSAEngine:
    return load_default_engine()


@pytest.fixture(scope="session")
def tuned_engine() -> GMSAEngine:
    """The default model's fair baseline: the same backbone and decoder-LoRA budget tuned on the same QA with the
    passages as text (read with ``decoder="keft"``)."""
    from gmsa_integrations.engine.engine import default_tuned_baseline

    path = default_tuned_baseline()
    if path is None:
        pytest.skip("this installation has no tuned full-context baseline")
    return GMSAEngine.from_pretrained(path)


@pytest.fixture(scope="session")
def held_out_questions() -> list[dict]:
    """Held-out questions (unseen names) over the bundled corpus, with gold answers."""
    import json

    from gmsa_integrations.cli.demo import BUNDLED_QUESTIONS

    return [json.loads(line) for line in BUNDLED_QUESTIONS.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def held_out_corpus_questions(held_out_questions) -> list[tuple[str, str, str]]:
    """``(gold passage, question, answer)`` for the first 12 single-hop held-out questions."""
    from gmsa_integrations.cli.demo import BUNDLED_CORPUS
    from gmsa_integrations.data.corpus import read_corpus

    passages = read_corpus(BUNDLED_CORPUS)
    triples = []
    for row in held_out_questions:
        gold = [p for p in passages if p.metadata.get("title") and p.metadata["title"] in row["question"]]
        if "." not in row["type"] and len(gold) == 1:
            triples.append((gold[0].text, row["question"], row["answers"][0]))
    return triples[:12]
