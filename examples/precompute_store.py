"""Precompute a corpus's soft tokens into a SoftTokenStore at indexing time, then reuse them.

    python examples/precompute_store.py --store runs/store            # the bundled corpus
    python examples/precompute_store.py --corpus my.jsonl --rates 4,8 --store runs/store

The same as `gmsa index build`. Compression is query-independent, so at query time the engine reads
soft tokens from the store and pays only for the decoder. Rerunning resumes (finished passages are hits).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from gmsa_integrations import GMSAEngine, SoftTokenStore
from gmsa_integrations.cli.demo import BUNDLED_CORPUS
from gmsa_integrations.cli.indexing import build_index
from gmsa_integrations.data.corpus import read_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(BUNDLED_CORPUS), help="JSON Lines corpus with a 'text' field")
    parser.add_argument("--store", default=None, help="store directory (default: a temporary one)")
    parser.add_argument("--rates", default="4", help="comma-separated compression rates")
    parser.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    args = parser.parse_args()

    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        store = SoftTokenStore(args.store or scratch)
        engine = GMSAEngine.from_pretrained(args.model, store=store)
        passages = read_corpus(args.corpus)
        start = time.perf_counter()
        stats = build_index(engine, passages, rates)
        print(
            f"indexed {len(passages)} passages x {len(rates)} rate(s) in {time.perf_counter() - start:.1f} s: {stats}"
        )
        texts = [p.text for p in passages[:32]]
        start = time.perf_counter()
        soft = engine.compress(texts, rate=rates[0])
        print(
            f"query time: {len(texts)} passages read back in {(time.perf_counter() - start) * 1000:.0f} ms "
            f"({sum(s.source_tokens for s in soft)} tokens -> {sum(s.num_tokens for s in soft)} soft tokens)"
        )
        print(f"store stats: {store.stats()}")
        store.close()


if __name__ == "__main__":
    main()
