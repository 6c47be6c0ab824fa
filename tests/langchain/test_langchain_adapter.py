import asyncio
import time

import pytest
import torch
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough

from gmsa_integrations.engine import allocate_rates
from gmsa_integrations.langchain import (
    GMSA_RAG_PROMPT,
    ChatGMSA,
    GMSACompressor,
    create_gmsa_rag_chain,
    format_docs,
)
from tests.conftest import make_engine

DOCS = [
    Document("Mira Solen was born in Kethport.", metadata={"source": "a"}, id="a"),
    Document("Orvan Tools is based in Dalby, on the river Anwe.", metadata={"source": "b"}, id="b"),
]


@pytest.fixture(scope="module")
def engine():
    return make_engine("llama")


class ListRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query, *, run_manager):
        return self.docs


def test_compressor_keeps_order_metadata_and_adds_stats(engine):
    out = GMSACompressor(engine=engine, rate=4).compress_documents(DOCS, "q")
    assert [d.id for d in out] == ["a", "b"]
    for original, doc in zip(DOCS, out):
        assert doc.metadata["source"] == original.metadata["source"]
        assert doc.metadata["gmsa_original_text"] == original.page_content
        length = engine.count_tokens(original.page_content)
        assert doc.metadata["gmsa_source_tokens"] == length
        assert doc.metadata["gmsa_soft_tokens"] == -(-length // 4)
        assert doc.metadata["gmsa_rate"] == 4
        assert all(isinstance(doc.metadata[k], int) for k in ("gmsa_source_tokens", "gmsa_soft_tokens", "gmsa_rate"))
        assert doc.page_content.startswith("<gmsa:") and len(doc.page_content) < 100


def test_compressed_documents_reach_the_decoder_as_soft_tokens(engine):
    docs = GMSACompressor(engine=engine).compress_documents(DOCS, "q")
    prompt = GMSA_RAG_PROMPT.format_messages(context=format_docs(docs), question="Where is Orvan Tools?")
    message = ChatGMSA(engine=engine, max_tokens=6).invoke(prompt)
    soft = sum(d.metadata["gmsa_soft_tokens"] for d in docs)
    text = prompt[0].content
    for d in docs:
        text = text.replace(d.page_content, "")
    assert message.usage_metadata["input_tokens"] == soft + engine.count_tokens(text)
    # the decoder's input starts with the first passage's soft tokens, in place of its reference
    embeds = engine.prompt_embeds(prompt[0].content)
    first = engine.resolve(docs[0].page_content)[0]
    torch.testing.assert_close(embeds[: first.num_tokens], first.embeddings)
    assert embeds.shape[0] == message.usage_metadata["input_tokens"]
    assert message.content == engine.generate(prompt[0].content, max_new_tokens=6)


def test_empty_list_empty_document_and_huge_document(engine):
    compressor = GMSACompressor(engine=engine)
    assert compressor.compress_documents([], "q") == []
    empty, huge = compressor.compress_documents([Document(""), Document("x" * 1000)], "q")
    assert empty.metadata["gmsa_soft_tokens"] == 0
    assert huge.metadata["gmsa_soft_tokens"] == 250  # windowed: ceil(1000 / 4)


def test_target_tokens_budget_compresses_low_ranked_documents_first():
    assert allocate_rates([40, 40, 40], [3, 2, 1], 4, None) == [4, 4, 4]
    assert allocate_rates([40, 40, 40], [3, 2, 1], 4, 25) == [4, 4, 8]
    assert allocate_rates([40, 40, 40], [3, 2, 1], 4, 20) == [4, 8, 8]
    assert allocate_rates([8, 8], [1, 2], 4, 1) == [8, 8]  # cannot go below one soft token each
    assert allocate_rates([40, 40], [1, 2], 4, 15) == [8, 4]


def test_bad_arguments_are_clear_errors(engine):
    with pytest.raises(ValueError, match="rate"):
        GMSACompressor(engine=engine, rate=0)
    with pytest.raises(TypeError, match="engine"):
        GMSACompressor(engine="not an engine")
    with pytest.raises(TypeError, match="documents"):
        GMSACompressor(engine=engine).compress_documents(["text"], "q")
    other = make_engine(seed=9)
    docs = GMSACompressor(engine=other).compress_documents(DOCS, "q")
    with pytest.raises(ValueError, match="another GMSA engine"):
        ChatGMSA(engine=engine).invoke(docs[0].page_content)
    with pytest.raises(ValueError, match="unknown soft-token reference"):
        ChatGMSA(engine=engine).invoke(f"<gmsa:{engine.fingerprint[:8]}:{'1' * 64}>")


def test_plain_lcel_chain_and_rag_chain_agree(engine):
    retriever = ListRetriever(docs=DOCS)
    compressor = GMSACompressor(engine=engine)
    llm = ChatGMSA(engine=engine, max_tokens=6)
    lcel = (
        {
            "context": retriever | (lambda docs: compressor.compress_documents(docs, "")) | format_docs,
            "question": RunnablePassthrough(),
        }
        | GMSA_RAG_PROMPT
        | llm
    )
    chain = create_gmsa_rag_chain(retriever, engine, max_tokens=6)
    assert chain.invoke("Where?") == lcel.invoke("Where?").content
    with_sources = create_gmsa_rag_chain(retriever, engine, max_tokens=6, return_sources=True).invoke("Where?")
    assert [d.id for d in with_sources["sources"]] == ["a", "b"]
    assert chain.batch(["Where?", "Who?"]) == [chain.invoke("Where?"), chain.invoke("Who?")]


def test_contextual_compression_retriever_and_pipeline(engine):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline

    base = ListRetriever(docs=DOCS)
    retriever = ContextualCompressionRetriever(base_compressor=GMSACompressor(engine=engine), base_retriever=base)
    docs = retriever.invoke("where?")
    assert [d.id for d in docs] == ["a", "b"] and all(d.page_content.startswith("<gmsa:") for d in docs)
    pipeline = DocumentCompressorPipeline(transformers=[GMSACompressor(engine=engine, rate=8)])
    assert pipeline.compress_documents(DOCS, "q")[0].metadata["gmsa_rate"] == 8


async def test_async_matches_sync_and_does_not_block_the_loop(engine):
    compressor = GMSACompressor(engine=engine)
    chain = create_gmsa_rag_chain(ListRetriever(docs=DOCS), engine, max_tokens=12)
    expected = chain.invoke("Where?")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    results = await chain.abatch(["Where?"] * 4)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert results == [expected] * 4
    assert ticks > elapsed / 0.001 / 20  # the loop kept running while the engine worked
    sync_docs = compressor.compress_documents(DOCS, "q")
    async_docs = await compressor.acompress_documents(DOCS, "q")
    assert [d.page_content for d in async_docs] == [d.page_content for d in sync_docs]
    pieces = [chunk async for chunk in ChatGMSA(engine=engine, max_tokens=12).astream(sync_docs[0].page_content)]
    assert (
        "".join(p.content for p in pieces)
        == ChatGMSA(engine=engine, max_tokens=12).invoke(sync_docs[0].page_content).content
    )


def test_stream_equals_invoke_and_reports_usage_once(engine):
    llm = ChatGMSA(engine=engine, max_tokens=10)
    chunks = list(llm.stream("Hello"))
    assert "".join(c.content for c in chunks) == llm.invoke("Hello").content
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_custom_prompt_template_works(engine):
    docs = GMSACompressor(engine=engine).compress_documents(DOCS, "q")
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{context}\n\n{question}")])
    out = (prompt | ChatGMSA(engine=engine, max_tokens=4)).invoke({"context": format_docs(docs), "question": "?"})
    assert out.usage_metadata["input_tokens"] > sum(d.metadata["gmsa_soft_tokens"] for d in docs)


def test_compressor_budget_uses_relevance_scores(engine):
    docs = [Document("a" * 40, metadata={"relevance_score": s}) for s in (0.1, 0.9, 0.5)]
    out = GMSACompressor(engine=engine, rate=4, target_tokens=25).compress_documents(docs, "q")
    assert [d.metadata["gmsa_rate"] for d in out] == [8, 4, 4]


def test_chat_template_wraps_plain_text_for_the_backbone_but_not_soft_token_prompts(engine):
    engine.tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    try:
        llm = ChatGMSA(engine=engine, max_tokens=5)
        plain = "Where is Orvan Tools?"
        assert llm.invoke(plain).content == engine.generate(f"<user>{plain}<assistant>", max_new_tokens=5)
        # soft tokens go to the KEFT decoder in the raw layout GMSA was trained on
        docs = GMSACompressor(engine=engine).compress_documents(DOCS, "q")
        prompt = docs[0].page_content + "\nQuestion: Where is Orvan Tools?\nAnswer:"
        assert llm.invoke(prompt).content == engine.generate(prompt, max_new_tokens=5)
        always = ChatGMSA(engine=engine, max_tokens=5, chat_template="always")
        assert always.invoke(prompt).content == engine.generate(f"<user>{prompt}<assistant>", max_new_tokens=5)
    finally:
        engine.tokenizer.chat_template = None
