import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from gmsa_integrations.langchain import FaissVectorStore, MiniLMEmbeddings, TitleLinkRetriever, create_gmsa_rag_chain
from tests.conftest import make_engine

CORPUS = [
    Document("Ada Lind works for Varn Tools and was born in Kethport.", id="ada", metadata={"title": "Ada Lind"}),
    Document("Varn Tools makes hardware; Mira Solen founded it.", id="varn", metadata={"title": "Varn Tools"}),
    Document("Kethport lies on the Anwe River.", id="keth", metadata={"title": "Kethport"}),
    Document("Mira Solen studied marine biology in Dalby.", id="mira", metadata={"title": "Mira Solen"}),
]
QUESTION = "What does Ada Lind's employer make?"


@pytest.fixture(scope="module")
def store():
    return FaissVectorStore.from_documents(CORPUS, MiniLMEmbeddings())


def _retriever(store, k=1, **kwargs):
    return TitleLinkRetriever(retriever=store.as_retriever(search_kwargs={"k": k}), documents=CORPUS, **kwargs)


class TestTitleLinkRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[TitleLinkRetriever]:
        return TitleLinkRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        store = FaissVectorStore.from_documents(CORPUS, MiniLMEmbeddings())
        return {"retriever": store.as_retriever(search_kwargs={"k": 1}), "documents": CORPUS}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION

    @pytest.mark.xfail(reason="k belongs to the wrapped retriever; links add documents beyond it")
    def test_k_constructor_param(self) -> None:
        raise NotImplementedError

    @pytest.mark.xfail(reason="k belongs to the wrapped retriever; links add documents beyond it")
    def test_invoke_with_k_kwarg(self) -> None:
        raise NotImplementedError


def test_the_best_hits_mentions_come_after_the_hits_in_order_and_capped(store):
    assert [d.id for d in _retriever(store).invoke(QUESTION)] == ["ada", "varn", "keth"]
    assert [d.id for d in _retriever(store, max_linked=1).invoke(QUESTION)] == ["ada", "varn"]
    assert [d.id for d in _retriever(store, max_linked=0).invoke(QUESTION)] == ["ada"]
    two = [d.id for d in _retriever(store, k=2).invoke(QUESTION)]
    assert two[:2] == ["ada", "varn"] and two[2:] == ["keth"]  # a hit is never added again as a link


async def test_async_retrieval_gives_the_same_documents(store):
    retriever = _retriever(store)
    assert [d.id for d in await retriever.ainvoke(QUESTION)] == [d.id for d in retriever.invoke(QUESTION)]


def test_linked_documents_are_compressed_and_read_like_retrieved_ones(store):
    chain = create_gmsa_rag_chain(_retriever(store), make_engine("llama"), rate=4, max_tokens=4, return_sources=True)
    sources = chain.invoke(QUESTION)["sources"]
    assert [d.metadata["gmsa_original_text"] for d in sources] == [d.page_content for d in CORPUS[:3]]
    assert all(d.metadata["gmsa_soft_tokens"] > 0 for d in sources)


def test_a_corpus_without_ids_or_with_a_negative_cap_is_refused(store):
    base = store.as_retriever()
    with pytest.raises(ValueError, match=r"documents\[0\] has no id"):
        TitleLinkRetriever(retriever=base, documents=[Document("no id", metadata={"title": "X"})])
    with pytest.raises(ValueError, match="repeats the id 'ada'"):
        TitleLinkRetriever(retriever=base, documents=[CORPUS[0], CORPUS[0]])
    with pytest.raises(ValueError, match="max_linked"):
        TitleLinkRetriever(retriever=base, documents=CORPUS, max_linked=-1)
