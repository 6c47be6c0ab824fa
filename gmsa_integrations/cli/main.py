"""``gmsa``: the top-level parser, ``gmsa demo`` and ``gmsa export``; the other sub-commands live beside it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="RAG over a corpus with LangChain and LlamaIndex, GMSA vs full text")
    parser.add_argument("--question", default=None, help="answer your own question over the corpus")
    parser.add_argument("--corpus", default=None, help='your own JSON Lines corpus ({"text": ..., "id": ...} rows)')
    parser.add_argument("--rate", type=int, default=4, help="compression rate (default 4)")
    parser.add_argument("--top-k", type=int, default=2, help="passages retrieved per question (default 2)")
    parser.add_argument(
        "--links",
        type=int,
        default=2,
        help="add up to N passages that the best one names by title, the second hop of two-hop questions "
        "(default 2; 0: off; needs a 'title' field in the corpus rows)",
    )
    parser.add_argument("--sample", type=int, default=30, help="held-out questions in the summary (default 30)")
    parser.add_argument("--workdir", default=None, help="index and store cache (default ~/.cache/gmsa-integrations)")
    parser.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    for name in ("rate", "top_k", "sample"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    if args.links < 0:
        raise SystemExit("--links must be >= 0")
    return run_demo(
        args.question,
        args.corpus,
        rate=args.rate,
        top_k=args.top_k,
        links=args.links,
        sample=args.sample,
        workdir=args.workdir,
        model=args.model,
    )


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="re-save a GMSA checkpoint (e.g. in half precision), or its decoder for serving engines"
    )
    parser.add_argument(
        "what",
        nargs="?",
        choices=["checkpoint", "decoder"],
        default="checkpoint",
        help="checkpoint (default): a GMSA checkpoint; decoder: the soft-token decoder as a plain Hugging Face "
        "checkpoint (tuned weights merged, tokenizer included) that reads engine.prompt_embeds(...)",
    )
    parser.add_argument("--model", required=True, help="GMSA checkpoint directory ('default': the embedded model)")
    parser.add_argument("--out", required=True, help="where the new checkpoint goes")
    parser.add_argument("--dtype", default="float16", help="float16, bfloat16 or float32 (default float16)")
    parser.add_argument(
        "--bundle-backbone",
        action="store_true",
        help="copy the backbone into the checkpoint (default: keep the reference, e.g. a GGUF file's sha256)",
    )
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..engine import GMSAEngine

    engine = GMSAEngine.from_pretrained(None if args.model == "default" else args.model, dtype=args.dtype)
    if args.what == "decoder":
        engine.export_decoder(args.out)
        print(
            f"{args.model} -> {args.out} (decoder, {engine.dtype}, stops at token ids {sorted(engine.stop_token_ids)})"
        )
        return 0
    engine.save_pretrained(args.out, bundle_backbone=True if args.bundle_backbone else None, dtype=engine.dtype)
    bundled = args.bundle_backbone or engine.backbone_ref in (None, "bundled")
    print(f"{args.model} -> {args.out} ({engine.dtype}, backbone {'bundled' if bundled else 'referenced'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmsa", description="GMSA context compression tools")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(subparsers)
    _add_export(subparsers)
    from .train import add_train_parser

    add_train_parser(subparsers)
    from .indexing import add_index_parser

    add_index_parser(subparsers)
    from .bench import add_bench_parser

    add_bench_parser(subparsers)
    from .data import add_data_parser

    add_data_parser(subparsers)
    from .eval import add_eval_parser

    add_eval_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
