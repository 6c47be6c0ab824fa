"""`gmsa demo` (what `make demo` runs) end to end, on a tiny random model so that it takes seconds."""

import re

import pytest

from gmsa_integrations.cli.demo import Pipelines, run_demo
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.engine import GMSAEngine, SoftTokenStore
from tests.conftest import make_engine


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    # LlamaIndex's compact mode reserves 500 tokens of its context window for refine prompts
    return make_engine(max_positions=2048).save_pretrained(tmp_path_factory.mktemp("demo") / "model")


def test_bundled_demo_prints_answers_and_a_held_out_summary(tiny_model, tmp_path, capsys):
    assert run_demo(model=str(tiny_model), workdir=str(tmp_path), sample=2, rate=4, top_k=2) == 0
    out = capsys.readouterr().out
    assert out.count("[LangChain] Q:") == 3 and out.count("[LlamaIndex] Q:") == 3
    retrieval = r"top-2 retrieval plus up to 2 title-linked passages"
    summary = re.search(rf"SUMMARY \(2 held-out questions, {retrieval}, rate 4x\).*compression ([\d.]+)x", out)
    assert summary and 3.0 <= float(summary.group(1)) <= 4.0  # ceil(L/4) soft tokens for L context tokens
    # latencies are only comparable beside the lengths of the answers they generated
    latency = r"store \d+ ms \(\d+-token answers\) vs full text \d+ ms \(\d+-token answers\); speed-up [\d.]+x"
    assert re.search(latency + " against the backbone as shipped", out)
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


def test_langchain_and_llama_index_pipelines_send_the_decoder_the_same_prompt(tiny_model, tmp_path):
    # corpus fields other than text and id (a title, a type) must not reach one pipeline's prompt only, and both
    # follow the best passage's title links alike
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"id": "a", "text": "Mira Solen was born in Kethport; she works for Orvan Tools.", "title": "Mira Solen", '
        '"type": "person"}\n'
        '{"id": "b", "text": "Orvan Tools makes drills.", "title": "Orvan Tools", "type": "organization"}\n'
        '{"id": "c", "text": "Kethport lies on the Anwe River.", "title": "Kethport", "type": "town"}\n'
    )
    engine = GMSAEngine.from_pretrained(tiny_model)
    pipelines = Pipelines(engine, read_corpus(corpus), tmp_path / "index", rate=4, top_k=1, links=2)
    prompts = []
    complete = engine.complete
    engine.complete = lambda prompt, **options: prompts.append(prompt) or complete(prompt, **options)
    langchain, llama_index = pipelines.langchain("Where was Mira born?"), pipelines.llama_index("Where was Mira born?")
    assert len(prompts) == 2 and prompts[0] == prompts[1] and "Mira Solen" not in prompts[0]
    assert langchain.answer == llama_index.answer and langchain.sources == llama_index.sources
    assert langchain.sources[1:] == ["Kethport lies on the Anwe River.", "Orvan Tools makes drills."]
