"""End to end on the embedded default model: the compressed chain answers as well as the full-text one."""

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnablePassthrough

from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.evaluation import exact_match, f1
from gmsa_integrations.langchain import GMSA_RAG_PROMPT, ChatGMSA, create_gmsa_rag_chain, format_docs
from gmsa_integrations.langchain.vectorstores import FaissVectorStore, MiniLMEmbeddings

QUESTIONS = 30


@pytest.fixture(scope="module")
def retriever():
    passages = read_corpus(BUNDLED_CORPUS)
    store = FaissVectorStore.from_texts([p.text for p in passages], MiniLMEmbeddings(), ids=[p.id for p in passages])
    return store.as_retriever(search_kwargs={"k": 3})


@pytest.mark.xfail(
    strict=True,
    reason="known gap: v0.3 soft tokens do not carry exact facts (GMSA F1 0.03 against 0.11 for the un-tuned "
    "full text on these 30 questions; model card)",
)
def test_compressed_chain_answers_as_well_as_full_text(default_engine, retriever, held_out_questions):
    rows = held_out_questions[:QUESTIONS]
    questions = [r["question"] for r in rows]
    compressed = create_gmsa_rag_chain(retriever, default_engine, rate=4, max_tokens=24, stop=["\n"])
    llm = ChatGMSA(engine=default_engine, max_tokens=24, stop=["\n"])
    full_text = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | GMSA_RAG_PROMPT
        | llm
        | StrOutputParser()
    )
    gmsa_answers = compressed.batch(questions)
    full_answers = full_text.batch(questions)
    for metric in (exact_match, f1):
        gmsa = sum(metric(a, r["answers"]) for a, r in zip(gmsa_answers, rows)) / len(rows)
        full = sum(metric(a, r["answers"]) for a, r in zip(full_answers, rows)) / len(rows)
        assert gmsa >= full - 0.05, (metric.__name__, gmsa, full)


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
