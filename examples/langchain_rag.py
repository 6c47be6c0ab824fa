"""LangChain RAG with GMSA: FAISS retriever (+ title links) -> ContextualCompressionRetriever(GMSACompressor) ->
ChatGMSA.

    python examples/langchain_rag.py --question "Which company does Zeri Simul work for?"
    python examples/langchain_rag.py --question "What industry is the employer of Kirsi Panur in?"   # two hops
    python examples/langchain_rag.py --corpus my_passages.jsonl --question "..." --stream

The default corpus and model are the bundled ones (a synthetic world; see the README's model card).
"""

from __future__ import annotations

import argparse

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser

from gmsa_integrations import GMSAEngine
from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.langchain import GMSA_RAG_PROMPT, ChatGMSA, GMSACompressor, TitleLinkRetriever, format_docs
from gmsa_integrations.langchain.vectorstores import FaissVectorStore, MiniLMEmbeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default="Which company does Zeri Simul work for?")
    parser.add_argument("--corpus", default=str(BUNDLED_CORPUS), help="JSON Lines corpus with a 'text' field")
    parser.add_argument("--rate", type=int, default=4, help="compression rate")
    parser.add_argument("--top-k", type=int, default=2, help="documents retrieved by the question")
    parser.add_argument("--links", type=int, default=2, help="documents the best one names by title (0: off)")
    parser.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    parser.add_argument("--stream", action="store_true", help="stream the answer token by token")
    args = parser.parse_args()

    engine = GMSAEngine.from_pretrained(args.model)
    passages = read_corpus(args.corpus)
    docs = [Document(p.text, id=p.id, metadata=p.metadata) for p in passages]
    base = FaissVectorStore.from_documents(docs, MiniLMEmbeddings()).as_retriever(search_kwargs={"k": args.top_k})
    if args.links:  # the second hop of a two-hop question, for corpora whose rows have a "title"
        base = TitleLinkRetriever(retriever=base, documents=docs, max_linked=args.links)
    retriever = ContextualCompressionRetriever(
        base_compressor=GMSACompressor(engine=engine, rate=args.rate), base_retriever=base
    )
    llm = ChatGMSA(engine=engine, max_tokens=24, stop=["\n"])
    found = retriever.invoke(args.question)
    chain = GMSA_RAG_PROMPT | llm | StrOutputParser()
    inputs = {"context": format_docs(found), "question": args.question}
    print(f"Q: {args.question}\nA: ", end="", flush=True)
    if args.stream:
        for piece in chain.stream(inputs):
            print(piece, end="", flush=True)
        print()
    else:
        print(chain.invoke(inputs).strip())
    for doc in found:
        meta = doc.metadata
        print(
            f"  [{meta['gmsa_source_tokens']} -> {meta['gmsa_soft_tokens']} tokens]",
            meta["gmsa_original_text"][:80] + "...",
        )


if __name__ == "__main__":
    main()
