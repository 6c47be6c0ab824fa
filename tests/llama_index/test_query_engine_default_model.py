"""End to end on the embedded default model, through LlamaIndex: the fair baseline reads the retrieved nodes, and
the GMSA query engine is compared with it. Retrieval is the demo's: the top 2 nodes by the question plus up to 2
that the best one names by title."""

import pytest
from llama_index.core.query_engine import RetrieverQueryEngine

from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.evaluation import exact_match, f1
from gmsa_integrations.llama_index import GMSA_QA_TEMPLATE, GMSALLM, TitleLinkRetriever, build_query_engine
from gmsa_integrations.llama_index.embeddings import faiss_vector_index, passage_nodes

QUESTIONS = 20


@pytest.fixture(scope="module")
def index():
    return faiss_vector_index(passage_nodes(read_corpus(BUNDLED_CORPUS)))


@pytest.fixture(scope="module")
def retriever(index):
    return TitleLinkRetriever.from_index(index, similarity_top_k=2, max_linked=2)


def _answers(query_engine, rows) -> list[str]:
    return [str(query_engine.query(r["question"])).strip() for r in rows]


def _score(metric, answers, rows):
    return sum(metric(a, r["answers"]) for a, r in zip(answers, rows)) / len(rows)


@pytest.fixture(scope="module")
def tuned_answers(tuned_engine, retriever, held_out_questions):
    """The fair baseline (the backbone tuned on the same QA, reading the passages as text) through LlamaIndex."""
    llm = GMSALLM(engine=tuned_engine, max_new_tokens=24, stop=["\n"], decoder="keft")
    full = RetrieverQueryEngine.from_args(retriever, llm=llm, text_qa_template=GMSA_QA_TEMPLATE)
    return _answers(full, held_out_questions[:QUESTIONS])


def test_the_fair_baseline_reads_the_retrieved_nodes_through_the_query_engine(tuned_answers, held_out_questions):
    assert _score(f1, tuned_answers, held_out_questions[:QUESTIONS]) >= 0.3


@pytest.mark.xfail(
    strict=True,
    reason="known gap: the default model's soft tokens carry some exact facts, far from all (on the demo's 30 "
    "questions GMSA's EM is well below the fair tuned baseline's, which reads the text; the card has the figures)",
)
def test_gmsa_query_engine_answers_as_well_as_the_fair_baseline(
    default_engine, index, retriever, held_out_questions, tuned_answers
):
    rows = held_out_questions[:QUESTIONS]
    gmsa = build_query_engine(index, default_engine, rate=4, retriever=retriever, max_new_tokens=24, stop=["\n"])
    gmsa_answers = _answers(gmsa, rows)
    for metric in (exact_match, f1):
        gmsa_score, tuned_score = _score(metric, gmsa_answers, rows), _score(metric, tuned_answers, rows)
        assert gmsa_score >= tuned_score - 0.05, (metric.__name__, gmsa_score, tuned_score)


async def test_streaming_and_async_match_the_plain_answer(default_engine, index, held_out_questions):
    question = held_out_questions[1]["question"]
    plain = build_query_engine(index, default_engine, similarity_top_k=3, max_new_tokens=24)
    streaming = build_query_engine(index, default_engine, similarity_top_k=3, max_new_tokens=24, streaming=True)
    expected = str(plain.query(question))
    assert "".join(streaming.query(question).response_gen) == expected
    assert str(await plain.aquery(question)) == expected
