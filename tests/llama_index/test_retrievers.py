import pytest
from llama_index.core.schema import TextNode

from gmsa_integrations.llama_index import TitleLinkRetriever, build_query_engine
from gmsa_integrations.llama_index.embeddings import faiss_vector_index
from tests.conftest import make_engine

CORPUS = [
    ("ada", "Ada Lind", "Ada Lind works for Varn Tools and was born in Kethport."),
    ("varn", "Varn Tools", "Varn Tools makes hardware; Mira Solen founded it."),
    ("keth", "Kethport", "Kethport lies on the Anwe River."),
    ("mira", "Mira Solen", "Mira Solen studied marine biology in Dalby."),
]
QUESTION = "What does Ada Lind's employer make?"


@pytest.fixture(scope="module")
def index():
    nodes = [
        TextNode(text=text, id_=i, metadata={"title": title}, excluded_embed_metadata_keys=["title"])
        for i, title, text in CORPUS
    ]
    return faiss_vector_index(nodes)


def _ids(results):
    return [r.node.node_id for r in results]


def test_the_best_hits_mentions_come_after_the_hits_unscored_and_capped(index):
    results = TitleLinkRetriever.from_index(index, similarity_top_k=1).retrieve(QUESTION)
    assert _ids(results) == ["ada", "varn", "keth"]
    assert results[0].score is not None and [r.score for r in results[1:]] == [None, None]
    assert _ids(TitleLinkRetriever.from_index(index, 1, max_linked=1).retrieve(QUESTION)) == ["ada", "varn"]
    assert _ids(TitleLinkRetriever.from_index(index, 1, follow=0).retrieve(QUESTION)) == ["ada"]


async def test_async_retrieval_gives_the_same_nodes(index):
    retriever = TitleLinkRetriever.from_index(index, similarity_top_k=1)
    assert _ids(await retriever.aretrieve(QUESTION)) == _ids(retriever.retrieve(QUESTION))


def test_the_query_engine_compresses_linked_nodes_like_retrieved_ones(index):
    engine = make_engine("llama", max_positions=4096)
    retriever = TitleLinkRetriever.from_index(index, similarity_top_k=1)
    response = build_query_engine(index, engine, retriever=retriever, max_new_tokens=4).query(QUESTION)
    assert _ids(response.source_nodes) == ["ada", "varn", "keth"]
    assert all(n.node.metadata["gmsa_soft_tokens"] > 0 for n in response.source_nodes)


def test_bad_arguments_are_refused_with_a_message_that_names_them(index):
    base = index.as_retriever(similarity_top_k=1)
    with pytest.raises(TypeError, match="BaseRetriever"):
        TitleLinkRetriever(object(), [])
    with pytest.raises(TypeError, match=r"nodes\[0\]"):
        TitleLinkRetriever(base, ["text"])
    with pytest.raises(ValueError, match="max_linked"):
        TitleLinkRetriever(base, [], max_linked=-2)
    empty = faiss_vector_index([TextNode(text="x", id_="x")])
    empty.docstore.delete_document("x")
    with pytest.raises(ValueError, match="docstore holds no nodes"):
        TitleLinkRetriever.from_index(empty)
