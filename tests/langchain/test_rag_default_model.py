"""End to end on the embedded default model, through LangChain: the fair baseline reads the retrieved passages,
and the compressed chain is compared with it. Retrieval is the demo's: the top 2 passages by the question plus up
to 2 that the best one names by title."""

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnablePassthrough

from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.evaluation import exact_match, f1
from gmsa_integrations.langchain import (
    GMSA_RAG_PROMPT,
    ChatGMSA,
    TitleLinkRetriever,
    create_gmsa_rag_chain,
    format_docs,
)
from gmsa_integrations.langchain.vectorstores import FaissVectorStore, MiniLMEmbeddings

QUESTIONS = 20


@pytest.fixture(scope="module")
def retriever():
    docs = [Document(p.text, id=p.id, metadata=p.metadata) for p in read_corpus(BUNDLED_CORPUS)]
    store = FaissVectorStore.from_documents(docs, MiniLMEmbeddings())
    return TitleLinkRetriever(retriever=store.as_retriever(search_kwargs={"k": 2}), documents=docs, max_linked=2)


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
    reason="known gap: the default model's soft tokens carry some exact facts, far from all (on the demo's 30 "
    "questions GMSA's EM is well below the fair tuned baseline's, which reads the text; the card has the figures)",
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
    assert 2 <= len(out["sources"]) <= 4  # the top 2, and the passages the best one names
    for doc in out["sources"]:
        meta = doc.metadata
        assert meta["gmsa_soft_tokens"] == -(-meta["gmsa_source_tokens"] // 4)
        assert default_engine.count_tokens(meta["gmsa_original_text"]) == meta["gmsa_source_tokens"]


async def test_async_batch_equals_sync(default_engine, retriever, held_out_questions):
    chain = create_gmsa_rag_chain(retriever, default_engine, rate=4, max_tokens=24, stop=["\n"])
    questions = [r["question"] for r in held_out_questions[:4]]
    assert await chain.abatch(questions) == chain.batch(questions)
