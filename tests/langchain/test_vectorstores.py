from collections.abc import Generator

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from gmsa_integrations.langchain import FaissVectorStore, GMSACompressor, MiniLMEmbeddings
from tests.conftest import make_engine

PASSAGES = [
    "Orvan Tools was founded in 1958 by Tamsin Reil; it makes hardware.",
    "Mira Solen was born in Kethport and studied marine biology.",
    "The Anwe River flows north through the town of Dalby.",
]


class TestFaissVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Generator[VectorStore, None, None]:
        yield FaissVectorStore(self.get_embeddings())


@pytest.fixture(scope="module")
def store():
    return FaissVectorStore.from_texts(
        PASSAGES, MiniLMEmbeddings(), metadatas=[{"n": i} for i in range(3)], ids=["orvan", "mira", "anwe"]
    )


def test_minilm_embeddings_are_offline_unit_vectors_that_rank_meaning():
    emb = MiniLMEmbeddings()
    query = emb.embed_query("Who started the company Orvan Tools?")
    docs = emb.embed_documents(PASSAGES)
    assert len(query) == 384 and abs(sum(x * x for x in query) - 1) < 1e-4
    scores = [sum(a * b for a, b in zip(query, d)) for d in docs]
    assert scores.index(max(scores)) == 0


def test_search_ranks_the_relevant_passage_first(store):
    docs = store.similarity_search("Where was Mira Solen born?", k=2)
    assert docs[0].id == "mira" and docs[0].metadata == {"n": 1}
    scored = store.similarity_search_with_relevance_scores("river through Dalby", k=3)
    assert scored[0][0].id == "anwe" and all(0 <= s <= 1 for _, s in scored)


def test_save_load_round_trip_and_delete(store, tmp_path):
    store.save_local(tmp_path)
    loaded = FaissVectorStore.load_local(tmp_path, MiniLMEmbeddings())
    query = "Who founded Orvan Tools?"
    assert [d.id for d in loaded.similarity_search(query, k=3)] == [d.id for d in store.similarity_search(query, k=3)]
    loaded.delete(["orvan"])
    assert "orvan" not in [d.id for d in loaded.similarity_search(query, k=3)]
    loaded.add_texts(["Mira Solen now lives in Dalby."], ids=["mira"])  # same id: replaced
    assert loaded.get_by_ids(["mira"])[0].page_content == "Mira Solen now lives in Dalby."
    assert len(loaded.similarity_search(query, k=10)) == 2
    with pytest.raises(ValueError, match="appears twice"):
        loaded.add_texts(["x", "y"], ids=["z", "z"])


def test_retriever_then_gmsa_compressor(store):
    from langchain_classic.retrievers import ContextualCompressionRetriever

    engine = make_engine()
    retriever = ContextualCompressionRetriever(
        base_compressor=GMSACompressor(engine=engine), base_retriever=store.as_retriever(search_kwargs={"k": 2})
    )
    docs = retriever.invoke("Where was Mira Solen born?")
    assert docs[0].metadata["gmsa_original_text"] == PASSAGES[1]
    assert isinstance(docs[0], Document) and docs[0].page_content.startswith("<gmsa:")
