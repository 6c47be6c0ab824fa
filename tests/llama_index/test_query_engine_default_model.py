"""End to end on the embedded default model: the GMSA query engine answers as well as the full-text one."""

import pytest
from llama_index.core.schema import TextNode

from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.evaluation import exact_match, f1
from gmsa_integrations.llama_index import GMSA_QA_TEMPLATE, GMSALLM, build_query_engine
from gmsa_integrations.llama_index.embeddings import faiss_vector_index

QUESTIONS = 30


@pytest.fixture(scope="module")
def index():
    return faiss_vector_index([TextNode(text=p.text, id_=p.id) for p in read_corpus(BUNDLED_CORPUS)])


def test_gmsa_query_engine_answers_as_well_as_full_text(default_engine, index, held_out_questions):
    rows = held_out_questions[:QUESTIONS]
    gmsa = build_query_engine(index, default_engine, rate=4, similarity_top_k=3, max_new_tokens=24, stop=["\n"])
    full = index.as_query_engine(
        llm=GMSALLM(engine=default_engine, max_new_tokens=24, stop=["\n"]),
        similarity_top_k=3,
        text_qa_template=GMSA_QA_TEMPLATE,
    )

    def answers(engine) -> list[str]:
        return [str(engine.query(r["question"])).strip() for r in rows]

    gmsa_answers, full_answers = answers(gmsa), answers(full)
    for metric in (exact_match, f1):
        gmsa_score = sum(metric(a, r["answers"]) for a, r in zip(gmsa_answers, rows)) / len(rows)
        full_score = sum(metric(a, r["answers"]) for a, r in zip(full_answers, rows)) / len(rows)
        assert gmsa_score >= full_score - 0.05, (metric.__name__, gmsa_score, full_score)


async def test_streaming_and_async_match_the_plain_answer(default_engine, index, held_out_questions):
    question = held_out_questions[1]["question"]
    plain = build_query_engine(index, default_engine, similarity_top_k=3, max_new_tokens=24)
    streaming = build_query_engine(index, default_engine, similarity_top_k=3, max_new_tokens=24, streaming=True)
    expected = str(plain.query(question))
    assert "".join(streaming.query(question).response_gen) == expected
    assert str(await plain.aquery(question)) == expected
