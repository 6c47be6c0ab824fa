import asyncio

from llama_index.core.schema import Document, MetadataMode

from gmsa_integrations.data.corpus import Passage
from gmsa_integrations.llama_index import (
    GMSA_QA_TEMPLATE,
    GMSALLM,
    GMSANodePostprocessor,
    MiniLMEmbedding,
    faiss_vector_index,
    load_faiss_index,
    passage_nodes,
)
from tests.conftest import make_engine

TEXTS = [
    "Orvan Tools was founded in 1958 by Tamsin Reil; it makes hardware.",
    "Mira Solen was born in Kethport and studied marine biology.",
    "The Anwe River flows north through the town of Dalby.",
]


def test_minilm_embedding_sync_and_async_agree():
    emb = MiniLMEmbedding()
    vector = emb.get_query_embedding("Where was Mira Solen born?")
    assert len(vector) == 384
    assert asyncio.run(emb.aget_query_embedding("Where was Mira Solen born?")) == vector
    assert len(emb.get_text_embedding_batch(TEXTS)) == 3


def test_faiss_index_persists_and_feeds_a_gmsa_query_engine(tmp_path):
    index = faiss_vector_index([Document(text=t, doc_id=f"d{i}") for i, t in enumerate(TEXTS)], persist_dir=tmp_path)
    top = index.as_retriever(similarity_top_k=1).retrieve("Where was Mira Solen born?")
    assert top[0].node.get_content() == TEXTS[1]
    loaded = load_faiss_index(tmp_path)
    again = loaded.as_retriever(similarity_top_k=1).retrieve("Where was Mira Solen born?")
    assert again[0].node.get_content() == TEXTS[1] and abs(again[0].score - top[0].score) < 1e-5
    engine = make_engine("llama", max_positions=4096)
    query_engine = loaded.as_query_engine(
        llm=GMSALLM(engine=engine, max_new_tokens=6),
        node_postprocessors=[GMSANodePostprocessor(engine=engine)],
        similarity_top_k=2,
        text_qa_template=GMSA_QA_TEMPLATE,
    )
    response = query_engine.query("Where was Mira Solen born?")
    assert response.source_nodes[0].node.metadata["gmsa_original_text"] == TEXTS[1]


def test_passage_nodes_keep_metadata_as_sources_but_out_of_what_is_read():
    passages = [Passage("p0", TEXTS[0], {"title": "Orvan Tools", "type": "org"}), Passage("p1", TEXTS[1])]
    nodes = passage_nodes(passages)
    assert [n.node_id for n in nodes] == ["p0", "p1"]
    assert nodes[0].metadata == {"title": "Orvan Tools", "type": "org"}
    # what the embedder and GMSA read is the passage alone, as LangChain's Document gives it
    assert nodes[0].get_content(MetadataMode.LLM) == TEXTS[0]
    assert nodes[0].get_content(MetadataMode.EMBED) == TEXTS[0]
    assert "Orvan Tools" in nodes[0].get_content(MetadataMode.ALL).split("\n")[0]
