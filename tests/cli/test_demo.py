"""`gmsa demo` (what `make demo` runs) end to end, on a tiny random model so that it takes seconds."""

import re

import pytest

from gmsa_integrations.cli.demo import run_demo
from gmsa_integrations.engine import SoftTokenStore
from tests.conftest import make_engine


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    # LlamaIndex's compact mode reserves 500 tokens of its context window for refine prompts
    return make_engine(max_positions=2048).save_pretrained(tmp_path_factory.mktemp("demo") / "model")


def test_bundled_demo_prints_answers_and_a_held_out_summary(tiny_model, tmp_path, capsys):
    assert run_demo(model=str(tiny_model), workdir=str(tmp_path), sample=2, rate=4, top_k=2) == 0
    out = capsys.readouterr().out
    assert out.count("[LangChain] Q:") == 3 and out.count("[LlamaIndex] Q:") == 3
    summary = re.search(r"SUMMARY \(2 held-out questions, top-2 retrieval, rate 4x\).*compression ([\d.]+)x", out)
    assert summary and 3.0 <= float(summary.group(1)) <= 4.0  # ceil(L/4) soft tokens for L context tokens
    for source, soft in re.findall(r"context tokens (\d+) -> (\d+) soft tokens", out):
        assert int(soft) >= -(-int(source) // 4) and int(soft) <= -(-int(source) // 4) + 2  # ceil per passage


def test_own_corpus_and_question_reuse_the_index_and_store(tiny_model, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "Mira Solen was born in Kethport."}\n{"id": "b", "text": "Orvan Tools."}\n')
    args = dict(corpus=str(corpus), model=str(tiny_model), workdir=str(tmp_path / "work"), top_k=2)
    assert run_demo("Where was Mira born?", **args) == 0
    first = capsys.readouterr().out
    assert (
        "'misses': 2" in first
        and "Mira Solen was born in Kethport." in first
        and "[LlamaIndex] Q: Where was Mira born?" in first
    )
    (folder,) = (tmp_path / "work" / "soft_tokens").iterdir()  # one store per model
    assert len(SoftTokenStore(folder)) == 2
    assert run_demo("Where was Mira born?", **args) == 0
    assert "'misses': 0" in capsys.readouterr().out  # the second run reads every soft token from the store
    # another model (e.g. after an upgrade of the default one) in the same working directory gets its own store
    other = make_engine(seed=7, max_positions=2048).save_pretrained(tmp_path / "other")
    assert run_demo("Where was Mira born?", **{**args, "model": str(other)}) == 0
    assert "'misses': 2" in capsys.readouterr().out
    assert len(list((tmp_path / "work" / "soft_tokens").iterdir())) == 2
