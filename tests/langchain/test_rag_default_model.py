"""End to end on the embedded default model, through LangChain: the fair baseline reads the retrieved passages,
and the compressed chain is compared with it."""

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnablePassthrough

from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.evaluation import exact_match, f1
from gmsa_integrations.langchain import GMSA_RAG_PROMPT, ChatGMSA, create_gmsa_rag_chain, format_docs
from gmsa_integrations.langchain.vectorstores import FaissVectorStore, MiniLMEmbeddings

QUESTIONS = 20


@pytest.fixture(scope="module")
def retriever():
    passages = read_corpus(BUNDLED_CORPUS)
    store = FaissVectorStore.from_texts([p.text for p in passages], MiniLMEmbeddings(), ids=[p.id for p in passages])
    return store.as_retriever(search_kwargs={"k": 3})


def _full_text_chain(retriever, engine, context=None):
    llm = ChatGMSA(engine=engine, max_tokens=24, stop=["\n"], decoder="keft")
    context = context if context is not None else retriever | format_docs
    return {"context": context, "question": RunnablePassthrough()} | GMSA_RAG_PROMPT | llm | StrOutputParser()


def _score(metric, answers, rows):
    return sum(metric(a, r["answers"]) for a, r in zip(answers, rows)) / len(rows)


@pytest.fixture(scope="module")
def tuned_answers(tuned_engine, retriever, held_out_questions):
    """The fair baseline (the backbone tuned on the same QA, reading the passages as text) through LangChain."""
    return _full_text_chain(retriever, tuned_engine).batch([r["question"] for r in held_out_questions[:QUESTIONS]])


def test_the_fair_baseline_reads_the_retrieved_passages_through_the_chain(
    tuned_engine, retriever, held_out_questions, tuned_answers
):
    # retrieval -> prompt -> ChatGMSA carries the passages to the decoder: without them the same model is lost
    rows = held_out_questions[:QUESTIONS]
    assert _score(f1, tuned_answers, rows) >= 0.3
    few = rows[:10]
    no_context = _full_text_chain(retriever, tuned_engine, context=lambda _: "").batch([r["question"] for r in few])
    assert _score(f1, tuned_answers[:10], few) >= _score(f1, no_context, few) + 0.2


@pytest.mark.xfail(
    strict=True,
    reason="known gap: the default model's soft tokens do not carry exact facts (v0.3: GMSA EM 0.05 against "
    "0.35 for the fair tuned baseline reading the text; on 30, F1 0.14 against 0.47: model card)",
)
def test_compressed_chain_answers_as_well_as_the_fair_baseline(
    default_engine, retriever, held_out_questions, tuned_answers
):
    rows = held_out_questions[:QUESTIONS]
    compressed = create_gmsa_rag_chain(retriever, default_engine, rate=4, max_tokens=24, stop=["\n"])
    gmsa_answers = compressed.batch([r["question"] for r in rows])
    for metric in (exact_match, f1):
        gmsa_score, tuned_score = _score(metric, gmsa_answers, rows), _score(metric, tuned_answers, rows)
        assert gmsa_score >= tuned_score - 0.05, (metric.__name__, gmsa_score, tuned_score)


def test_sources_carry_token_counts_and_original_text(default_engine, retriever, held_out_questions):
    chain = create_gmsa_rag_chain(retriever, default_engine, rate=4, return_sources=True, max_tokens=24, stop=["\n"])
    out = chain.invoke(held_out_questions[0]["question"])
    assert len(out["sources"]) == 3
    for doc in out["sources"]:
        meta = doc.metadata
        assert meta["gmsa_soft_tokens"] == -(-meta["gmsa_source_tokens"] // 4)
        assert default_engine.count_tokens(meta["gmsa_original_text"]) == meta["gmsa_source_tokens"]


async def test_async_batch_equals_sync(default_engine, retriever, held_out_questions):
    chain = create_gmsa_rag_chain(retriever, default_engine, rate=4, max_tokens=24, stop=["\n"])
    questions = [r["question"] for r in held_out_questions[:4]]
    assert await chain.abatch(questions) == chain.batch(questions)
