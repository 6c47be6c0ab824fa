"""The ``gmsa`` command line (also ``python -m gmsa_integrations``).

Each sub-command lives in the module that owns the work; this file only wires them up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="compress passages and answer a question end to end")
    parser.add_argument("--question", default=None, help="your own question")
    parser.add_argument("--rate", type=int, default=4, help="compression rate (default 4)")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(question=args.question, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmsa", description="GMSA context compression tools")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(subparsers)
    from .training.cli import add_train_parser

    add_train_parser(subparsers)
    from .indexing import add_index_parser

    add_index_parser(subparsers)
    from .bench import add_bench_parser

    add_bench_parser(subparsers)
    from .synth import add_data_parser

    add_data_parser(subparsers)
    from .evaluation.cli import add_eval_parser

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
