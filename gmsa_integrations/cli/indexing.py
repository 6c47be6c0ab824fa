"""``gmsa index build``: precompute a corpus's soft tokens into a `SoftTokenStore` at indexing time.

Resumable: work is committed in chunks, and a rerun finds finished chunks in the store.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..data.corpus import Passage, read_corpus
from ..engine import GMSAEngine, SoftTokenStore
from .args import int_list


def build_index(
    engine: GMSAEngine,
    passages: Sequence[Passage],
    rates: Sequence[int],
    *,
    batch_size: int = 16,
    chunk_size: int = 256,
    show_progress: bool = True,
) -> dict[str, int]:
    """Compress every passage at every rate into ``engine.store``; returns the store's stats."""
    if engine.store is None:
        raise ValueError("build_index needs an engine with a store: GMSAEngine.from_pretrained(..., store=store)")
    from tqdm.auto import tqdm

    texts = [p.text for p in passages]
    total = len(texts) * len(rates)
    with tqdm(total=total, desc="indexing soft tokens", unit="passage", disable=not show_progress) as bar:
        for rate in rates:
            for start in range(0, len(texts), chunk_size):
                chunk = texts[start : start + chunk_size]
                engine.compress(chunk, rate=rate, batch_size=batch_size)
                bar.update(len(chunk))
    return engine.store.stats()


def add_index_parser(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="precompute soft tokens for a corpus")
    actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="compress a corpus into a soft-token store (resumable)")
    build.add_argument("--corpus", required=True, help='JSON Lines with {"text": ..., "id": ...} rows')
    build.add_argument("--store", required=True, help="store directory")
    build.add_argument("--rates", type=int_list, default=[4], help="comma-separated rates (default 4)")
    build.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    build.add_argument("--batch-size", type=int, default=16)
    build.add_argument("--device", default=None)
    build.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    engine = GMSAEngine.from_pretrained(args.model, device=args.device, store=SoftTokenStore(args.store))
    passages = read_corpus(args.corpus)
    stats = build_index(engine, passages, args.rates, batch_size=args.batch_size)
    print(f"{len(passages)} passages x {len(args.rates)} rates -> {args.store}: {stats}")
    return 0
