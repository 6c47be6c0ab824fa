"""``gmsa train ae|keft|baseline|backbone``.

The flags are generated from the dataclasses (`TrainConfig` and its `GMSAConfig`; `PretrainConfig` for
``backbone``) by ``transformers.HfArgumentParser``, so every field has a flag and its docstring as help.
``--config FILE.yaml`` takes the same names; flags given on the command line win over it.
"""

from __future__ import annotations

import argparse

from ..engine import GMSAConfig
from ..training.pretrain import PretrainConfig
from ..training.trainer import TrainConfig
from .args import dataclass_options, given_options

STAGES = (
    ("ae", "stage 1: autoencoder pretraining (QA rows in the data are trained too)"),
    ("keft", "stage 2: knowledge extraction"),
    ("baseline", "the fair full-context baseline: the backbone's decoder tuned on QA with passages as text"),
)


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train GMSA (autoencoder, then KEFT) or a small backbone")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    backbone = stages.add_parser(
        "backbone", help="stage 0: tokenizer + small Llama from scratch", parents=[dataclass_options(PretrainConfig)]
    )
    backbone.set_defaults(func=run_pretrain)
    for stage, help_text in STAGES:
        parser = stages.add_parser(
            stage, help=help_text, parents=[dataclass_options(TrainConfig, GMSAConfig, exclude=["stage"])]
        )
        parser.add_argument("--config", help="YAML file with the same names as the flags")
        parser.add_argument("--val-data", help="held-out rows (autoencoder and/or QA JSON Lines, comma-separated)")
        parser.add_argument("--val-every", type=int, default=100, help="validate every N steps (default 100)")
        parser.add_argument("--val-samples", type=int, default=16, help="rows of each kind validated (default 16)")
        parser.add_argument("--val-rate", type=int, default=4, help="compression rate validated (default 4)")
        parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..training.trainer import train

    given = {**given_options(args, TrainConfig, GMSAConfig), "stage": args.stage}
    try:
        if args.config:
            config = TrainConfig.from_yaml(args.config, **given)
        else:
            missing = [f"--{name.replace('_', '-')}" for name in ("data", "output_dir") if name not in given]
            if missing:
                raise SystemExit(f"gmsa train {args.stage}: {' and '.join(missing)} required (or --config FILE.yaml)")
            config = TrainConfig.from_options(given)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"gmsa train {args.stage}: {exc}") from None
    train(config, callbacks=[_validation(args, config.max_length)] if args.val_data else [])
    print(f"checkpoint written to {config.output_dir}")
    return 0


def _validation(args: argparse.Namespace, max_length: int):
    """The ``--val-*`` flags as a callback factory. The command line composes training with evaluation;
    the training library itself never imports evaluation."""
    from ..data.records import AERow, QARow, read_rows
    from ..evaluation.callback import ValidationCallback

    rows = [row for path in args.val_data.split(",") for row in read_rows(path, "mixed")]
    ae_rows = [r for r in rows if isinstance(r, AERow)][: args.val_samples]
    qa_rows = [r for r in rows if isinstance(r, QARow)][: args.val_samples]
    options = {"every": args.val_every, "rate": args.val_rate, "max_length": max_length}
    return lambda engine: ValidationCallback(engine, ae_rows, qa_rows, **options)


def run_pretrain(args: argparse.Namespace) -> int:
    from ..training.pretrain import pretrain_backbone

    given = given_options(args, PretrainConfig)
    missing = [f"--{name.replace('_', '-')}" for name in ("ae_data", "qa_data", "output_dir") if name not in given]
    if missing:
        raise SystemExit(f"gmsa train backbone: {', '.join(missing)} required")
    output = pretrain_backbone(PretrainConfig(**given))
    print(f"backbone written to {output}")
    return 0
