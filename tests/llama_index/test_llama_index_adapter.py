import asyncio

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from gmsa_integrations.llama_index import GMSA_QA_TEMPLATE, GMSALLM, GMSANodePostprocessor
from tests.conftest import make_engine

TEXTS = ["Mira Solen was born in Kethport.", "Orvan Tools is based in Dalby.", "The Anwe River flows north."]


@pytest.fixture(scope="module")
def engine():
    # LlamaIndex budgets the prompt (references counted as text) against the decoder's context window
    return make_engine("llama", max_positions=4096)


def _nodes():
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"s{i}"}), score=1.0 - i / 10)
        for i, t in enumerate(TEXTS)
    ]


def test_postprocessor_keeps_scores_ids_metadata_and_hides_bookkeeping(engine):
    out = GMSANodePostprocessor(engine=engine, rate=4).postprocess_nodes(_nodes(), query_str="q")
    assert [n.node.node_id for n in out] == ["n0", "n1", "n2"]
    assert [n.score for n in out] == [1.0, 0.9, 0.8]
    for item, text in zip(out, TEXTS):
        meta = item.node.metadata
        assert meta["source"].startswith("s") and meta["gmsa_original_text"] == text
        assert meta["gmsa_soft_tokens"] == -(-engine.count_tokens(text) // 4) and meta["gmsa_rate"] == 4
        llm_text = item.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "gmsa_" not in llm_text and text not in llm_text and "<gmsa:" in llm_text
        assert "gmsa_" not in item.node.get_content(metadata_mode=MetadataMode.EMBED)
    assert _nodes()[0].node.text == TEXTS[0]  # the input nodes are not modified


def test_bad_nodes_and_arguments(engine):
    post = GMSANodePostprocessor(engine=engine)
    assert post.postprocess_nodes([], query_str="q") == []
    empty = post.postprocess_nodes([NodeWithScore(node=TextNode(text=""), score=None)], query_str="q")
    assert empty[0].node.metadata["gmsa_soft_tokens"] == 0 and empty[0].score is None
    huge = post.postprocess_nodes([NodeWithScore(node=TextNode(text="y" * 900))], query_str="q")
    assert huge[0].node.metadata["gmsa_soft_tokens"] == 225
    with pytest.raises(TypeError, match="NodeWithScore"):
        post.postprocess_nodes([TextNode(text="x")], query_str="q")
    with pytest.raises(ValueError, match="rate"):
        GMSANodePostprocessor(engine=engine, rate=-1)
    with pytest.raises(ValueError, match="unknown soft-token reference"):
        GMSALLM(engine=engine).complete(f"<gmsa:{engine.fingerprint[:8]}:{'2' * 64}>")


def test_llm_metadata_complete_and_stream(engine):
    llm = GMSALLM(engine=engine, max_new_tokens=10)
    assert llm.metadata.num_output == 10 and llm.metadata.context_window == 4096
    full = llm.complete("Hello").text
    assert full == engine.generate("Hello", max_new_tokens=10)
    chunks = list(llm.stream_complete("Hello"))
    assert chunks[-1].text == full and "".join(c.delta for c in chunks) == full


@pytest.fixture
def index(engine):
    Settings.embed_model = MockEmbedding(embed_dim=8)
    return VectorStoreIndex([TextNode(text=t, id_=f"n{i}") for i, t in enumerate(TEXTS)])


def test_query_engine_streaming_async_and_retriever_query_engine(engine, index):
    llm = GMSALLM(engine=engine, max_new_tokens=8)
    post = [GMSANodePostprocessor(engine=engine)]
    qe = index.as_query_engine(llm=llm, node_postprocessors=post, similarity_top_k=2, text_qa_template=GMSA_QA_TEMPLATE)
    response = qe.query("Where was Mira born?")
    assert len(response.source_nodes) == 2
    assert all(n.node.metadata["gmsa_soft_tokens"] > 0 for n in response.source_nodes)
    streaming = index.as_query_engine(
        llm=llm, node_postprocessors=post, similarity_top_k=2, text_qa_template=GMSA_QA_TEMPLATE, streaming=True
    ).query("Where was Mira born?")
    assert "".join(streaming.response_gen) == str(response)
    assert str(asyncio.run(qe.aquery("Where was Mira born?"))) == str(response)
    rqe = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=2), llm=llm, node_postprocessors=post, text_qa_template=GMSA_QA_TEMPLATE
    )
    assert str(rqe.query("Where was Mira born?")) == str(response)


def test_postprocessor_budget_uses_node_scores(engine):
    nodes = [NodeWithScore(node=TextNode(text="a" * 40), score=s) for s in (0.1, 0.9, 0.5)]
    out = GMSANodePostprocessor(engine=engine, rate=4, target_tokens=25).postprocess_nodes(nodes, query_str="q")
    assert [n.node.metadata["gmsa_rate"] for n in out] == [8, 4, 4]


@pytest.mark.parametrize("mode", ["compact", "refine", "tree_summarize", "simple_summarize", "accumulate"])
def test_response_modes_resolve_every_reference(engine, index, mode):
    # each mode packs node texts into its own prompts; every reference must still reach the decoder
    llm = GMSALLM(engine=engine, max_new_tokens=4)
    qe = index.as_query_engine(
        llm=llm,
        node_postprocessors=[GMSANodePostprocessor(engine=engine)],
        similarity_top_k=2,
        text_qa_template=GMSA_QA_TEMPLATE,
        response_mode=mode,
    )
    calls = []
    complete = engine.complete

    def spy(prompt, *args, **kwargs):
        calls.append((prompt, complete(prompt, *args, **kwargs)))
        return calls[-1][1]

    engine.complete = spy
    try:
        response = qe.query("Where was Mira born?")
    finally:
        del engine.complete
    assert len(response.source_nodes) == 2 and calls
    for node in response.source_nodes:  # every node reached the decoder, as its soft tokens
        assert any(node.node.get_content() in prompt for prompt, _ in calls)
    for prompt, completion in calls:
        soft = [s for s in engine.resolve(prompt) if not isinstance(s, str)]
        assert completion.soft_tokens == sum(sp.num_tokens for sp in soft)
    assert str(response) == calls[-1][1].text.strip() or mode in ("accumulate", "tree_summarize")
