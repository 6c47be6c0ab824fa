"""`GMSA_RAG_PROMPT` and `create_gmsa_rag_chain`: retriever -> GMSACompressor -> prompt -> ChatGMSA -> str."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableParallel, RunnablePassthrough

from ..engine.prompts import PASSAGE_SEPARATOR, QA_TEMPLATE
from .chat_models import ChatGMSA
from .compressors import GMSACompressor

GMSA_RAG_PROMPT = ChatPromptTemplate.from_messages([("human", QA_TEMPLATE)])
"""A prompt with ``{context}`` and ``{question}`` in the layout the default model was trained on."""


def format_docs(docs: Sequence[Document]) -> str:
    """Join documents (compressed or not) the way `GMSA_RAG_PROMPT` expects."""
    return PASSAGE_SEPARATOR.join(d.page_content for d in docs)


def create_gmsa_rag_chain(
    retriever: BaseRetriever,
    engine: Any = None,
    rate: int = 4,
    *,
    prompt: ChatPromptTemplate = GMSA_RAG_PROMPT,
    return_sources: bool = False,
    **chat_kwargs: Any,
) -> Runnable:
    """An LCEL chain: question -> retrieved documents -> soft tokens -> answer.

    Args:
        retriever: any LangChain retriever.
        engine: the `GMSAEngine` (``None``: the embedded default model).
        rate: compression rate.
        return_sources: return ``{"question", "sources", "answer"}`` (``sources`` are the compressed
            documents, with the original text in ``metadata["gmsa_original_text"]``) instead of the answer.
        chat_kwargs: passed to `ChatGMSA` (``max_tokens``, ``stop``, ...).
    """
    compressor = GMSACompressor(engine=engine, rate=rate)
    llm = ChatGMSA(engine=compressor.engine, **chat_kwargs)

    def retrieve(question: str, config: RunnableConfig) -> Sequence[Document]:
        return compressor.compress_documents(retriever.invoke(question, config), question)

    async def aretrieve(question: str, config: RunnableConfig) -> Sequence[Document]:
        docs = await retriever.ainvoke(question, config)
        return await compressor.acompress_documents(docs, question)

    answer = RunnablePassthrough.assign(context=lambda x: format_docs(x["sources"])) | prompt | llm | StrOutputParser()
    chain = RunnableParallel(question=RunnablePassthrough(), sources=RunnableLambda(retrieve, afunc=aretrieve)).assign(
        answer=answer
    )
    if return_sources:
        return chain
    return chain | RunnableLambda(lambda x: x["answer"])
