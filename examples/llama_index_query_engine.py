"""LlamaIndex query engine with GMSA: FAISS VectorStoreIndex (+ title links) -> GMSANodePostprocessor -> GMSALLM.

    python examples/llama_index_query_engine.py --question "Who founded Tolmirkan Energy?"
    python examples/llama_index_query_engine.py --question "What industry is the employer of Kirsi Panur in?"
    python examples/llama_index_query_engine.py --persist-dir runs/index   # build once, reload later

Response modes: ``compact`` (default) packs all compressed nodes into one prompt; ``refine`` and
``tree_summarize`` also work, but they add prompts the default model was not trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gmsa_integrations import GMSAEngine
from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.data.corpus import read_corpus
from gmsa_integrations.llama_index import (
    TitleLinkRetriever,
    build_query_engine,
    faiss_vector_index,
    load_faiss_index,
    passage_nodes,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default="Which company does Zeri Simul work for?")
    parser.add_argument("--corpus", default=str(BUNDLED_CORPUS), help="JSON Lines corpus with a 'text' field")
    parser.add_argument("--rate", type=int, default=4, help="compression rate")
    parser.add_argument("--top-k", type=int, default=2, help="nodes retrieved by the question")
    parser.add_argument("--links", type=int, default=2, help="nodes the best one names by title (0: off)")
    parser.add_argument("--response-mode", default="compact", help="compact, refine, tree_summarize, ...")
    parser.add_argument("--persist-dir", default=None, help="save the index here, or load it if present")
    parser.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    args = parser.parse_args()

    engine = GMSAEngine.from_pretrained(args.model)
    if args.persist_dir and (Path(args.persist_dir) / "docstore.json").is_file():
        index = load_faiss_index(args.persist_dir)
    else:
        # a title stays on each node for the links, out of what is embedded and what the LLM reads
        nodes = passage_nodes(read_corpus(args.corpus))
        index = faiss_vector_index(nodes, persist_dir=args.persist_dir)
    links = TitleLinkRetriever.from_index(index, args.top_k, max_linked=args.links) if args.links else None
    query_engine = build_query_engine(
        index,
        engine,
        rate=args.rate,
        similarity_top_k=args.top_k,
        retriever=links,
        response_mode=args.response_mode,
        max_new_tokens=24,
        stop=["\n"],
    )
    response = query_engine.query(args.question)
    print(f"Q: {args.question}\nA: {str(response).strip()}")
    for node in response.source_nodes:
        meta = node.node.metadata
        print(
            f"  {'linked     ' if node.score is None else f'score {node.score:.3f}'} "
            f"[{meta['gmsa_source_tokens']} -> {meta['gmsa_soft_tokens']} tokens] "
            f"{meta['gmsa_original_text'][:70]}..."
        )


if __name__ == "__main__":
    main()
