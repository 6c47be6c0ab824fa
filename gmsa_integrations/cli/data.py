"""``gmsa data synth`` and ``gmsa data prose``: write the training and evaluation data sets."""

from __future__ import annotations

import argparse

from ..data.synth import STYLES
from .args import name_list


def add_data_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="data sets")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = actions.add_parser("synth", help="write the synthetic world (train/validation/test + corpus)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--train-worlds", type=int, default=6)
    synth.add_argument("--scale", type=float, default=1.0, help="entities per world, relative to 120/40/30")
    synth.add_argument("--distractors", type=int, default=2, help="unrelated passages per training question")
    synth.add_argument(
        "--style",
        choices=list(STYLES),
        default="templated",
        help="templated: the world every shipped model trained on; varied: other name shapes, open values, "
        "pronouns and more question wordings; real-names: the varied world with real names from Faker's locales "
        "(the data extra)",
    )
    synth.set_defaults(func=_run_synth)

    prose = actions.add_parser("prose", help="write English prose passages from the Python docs (offline)")
    prose.add_argument("--out", required=True)
    prose.add_argument("--min-chars", type=int, default=150)
    prose.add_argument("--max-chars", type=int, default=450)
    prose.add_argument("--seed", type=int, default=0)
    prose.add_argument(
        "--packages",
        type=name_list,
        default=[],
        help="also the docstrings of these installed packages, comma-separated (e.g. numpy,scipy)",
    )
    prose.set_defaults(func=_run_prose)


def _run_synth(args: argparse.Namespace) -> int:
    from ..data.synth import generate

    counts = generate(
        args.out,
        args.seed,
        train_worlds=args.train_worlds,
        scale=args.scale,
        distractors=args.distractors,
        style=args.style,
    )
    print(counts)
    return 0


def _run_prose(args: argparse.Namespace) -> int:
    from ..data.prose import generate

    counts = generate(
        args.out, min_chars=args.min_chars, max_chars=args.max_chars, seed=args.seed, packages=args.packages
    )
    print(counts)
    return 0
