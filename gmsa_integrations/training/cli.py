"""``gmsa train backbone|ae|keft``.

``ae``/``keft`` flags mirror `TrainConfig` fields (``--config FILE.yaml`` takes the same keys);
``backbone`` flags mirror `PretrainConfig` (a small Llama from scratch, the default model's first step).
"""

from __future__ import annotations

import argparse
import dataclasses

from .trainer import TrainConfig, parse_rates

_FLAGS: list[tuple[str, type | None, str]] = [
    ("backbone", str, "backbone path or hub id (autoencoder from a backbone)"),
    ("init", str, "GMSA checkpoint to continue from (KEFT starts from the autoencoder)"),
    ("data", str, "JSON Lines file or datasets directory"),
    ("output-dir", str, "where the checkpoint and log.jsonl go"),
    ("max-steps", int, "optimizer steps"),
    ("batch-size", int, "per-device batch size"),
    ("learning-rate", float, "default 1e-4 (ae) / 1e-5 (keft)"),
    ("rates", parse_rates, "compression rates sampled per sample, e.g. 4,8 (one value: fixed rate)"),
    ("encoder-layers", int, "backbone layers used as the encoder"),
    ("lsa-layers", int, "decoder layers copied into LSA"),
    ("lora-r", int, "encoder LoRA rank"),
    ("lora-alpha", int, "encoder LoRA alpha"),
    ("paradigm", str, "group-merging (GMSA) or memory-tokens (ICAE-style baseline)"),
    ("memory-tokens", int, "memory tokens of the baseline"),
    ("keft-mode", str, "qkv (Q/K/V of every decoder layer, paper v1), full (whole decoder, v2) or lora (Q/K/V/O)"),
    ("ae-decoder", str, "frozen (paper), or also tune the decoder in stage ae: lora (Q/K/V/O), qkv or full"),
    ("keft-lora-r", int, "rank of the decoder LoRA (keft-mode lora, ae-decoder lora)"),
    ("keft-lora-alpha", int, "alpha of the decoder LoRA"),
    ("max-length", int, "context tokens per passage"),
    ("max-window-tokens", int, "encoder window"),
    ("instruction", str, "autoencoder instruction"),
    ("qa-template", str, "KEFT text after the soft tokens, with {question}"),
    ("answer-template", str, "KEFT target template with {answer}"),
    ("passage-separator", str, "KEFT text between passages' soft tokens"),
    ("gradient-accumulation-steps", int, "micro-batches per optimizer step"),
    ("warmup-steps", int, "linear warm-up steps"),
    ("logging-steps", int, "log every N steps"),
    ("save-steps", int, "checkpoint every N steps"),
    ("seed", int, "random seed"),
    ("dataloader-workers", int, "processes that build batches beside the training loop (0: in it)"),
]


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train GMSA (autoencoder, then KEFT) or a small backbone")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    _add_backbone_parser(stages)
    stages_help = (
        ("ae", "stage 1: autoencoder pretraining (QA rows in the data are trained too)"),
        ("keft", "stage 2: knowledge extraction"),
        ("baseline", "the fair full-context baseline: the backbone's decoder tuned on QA with passages as text"),
    )
    for stage, help_text in stages_help:
        parser = stages.add_parser(stage, help=help_text)
        parser.add_argument("--config", help="YAML file with the same keys as the flags")
        for flag, kind, help_flag in _FLAGS:
            parser.add_argument(f"--{flag}", type=kind, default=None, help=help_flag)
        parser.add_argument("--gradient-checkpointing", action="store_true", default=None)
        parser.add_argument("--resume", nargs="?", const=True, default=None, help="resume (latest or given checkpoint)")
        parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
        parser.add_argument("--no-progress", dest="show_progress", action="store_false", default=None)
        parser.add_argument("--val-data", help="held-out rows (autoencoder and/or QA JSON Lines, comma-separated)")
        parser.add_argument("--val-every", type=int, default=100, help="validate every N steps (default 100)")
        parser.add_argument("--val-samples", type=int, default=16, help="rows of each kind validated (default 16)")
        parser.add_argument("--val-rate", type=int, default=4, help="compression rate validated (default 4)")
        parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from .trainer import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given["stage"] = args.stage
    config = TrainConfig.from_yaml(args.config, **given) if args.config else TrainConfig(**given)
    train(config, callbacks=[_validation(args)] if args.val_data else [])
    print(f"checkpoint written to {config.output_dir}")
    return 0


def _validation(args: argparse.Namespace):
    """The ``--val-*`` flags as a callback factory. The command line composes training with evaluation;
    the training library itself never imports evaluation."""
    from ..evaluation.callback import ValidationCallback
    from ..records import AERow, QARow, read_rows

    rows = [row for path in args.val_data.split(",") for row in read_rows(path, "mixed")]
    ae_rows = [r for r in rows if isinstance(r, AERow)][: args.val_samples]
    qa_rows = [r for r in rows if isinstance(r, QARow)][: args.val_samples]
    return lambda engine: ValidationCallback(engine, ae_rows, qa_rows, every=args.val_every, rate=args.val_rate)


def _add_backbone_parser(stages: argparse._SubParsersAction) -> None:
    from .pretrain import PretrainConfig

    parser = stages.add_parser("backbone", help="stage 0: tokenizer + small Llama from scratch")
    for f in dataclasses.fields(PretrainConfig):
        if f.name == "show_progress":
            continue
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING
        kind = {"int": int, "float": float}.get(str(f.type).removesuffix(" | None"), str)
        parser.add_argument(flag, type=kind, required=required, default=None if required else f.default)
    parser.add_argument("--no-progress", dest="show_progress", action="store_false")
    parser.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import PretrainConfig, pretrain_backbone

    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    output = pretrain_backbone(PretrainConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    print(f"backbone written to {output}")
    return 0
