"""``gmsa eval recon|qa|probe``: print a table, write ``{"rows": [...], ...}`` JSON, optionally plot."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from ..evaluation.harness import (
    QA_METHODS,
    Row,
    evaluate_answer_likelihood,
    evaluate_qa,
    evaluate_reconstruction,
    exact_match_by_group,
    format_groups,
    format_table,
    plot_rows,
    plot_training_log,
)
from ..io import atomic_write_bytes
from .args import int_list, name_list

PLOT_TITLES = {"recon": "reconstruction", "qa": "QA", "probe": "answer-likelihood probe"}


def _methods(text: str) -> list[str]:
    methods = name_list(text)
    unknown = [m for m in methods if m not in QA_METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; choose from {','.join(QA_METHODS)}")
    return methods


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("eval", help="measure reconstruction and QA quality")
    tasks = evaluate.add_subparsers(dest="task", metavar="TASK", required=True)
    recon = tasks.add_parser("recon", help="reconstruction BLEU / ROUGE-L / prefix match per rate")
    qa = tasks.add_parser("qa", help="exact match / F1 / latency per method")
    probe = tasks.add_parser(
        "probe", help="gold-answer likelihood from each row's own soft tokens against another row's (reading)"
    )
    for parser in (recon, qa, probe):
        parser.add_argument(
            "--data", required=True, help="JSON Lines file (ae rows for recon, qa rows for qa and probe)"
        )
        parser.add_argument("--rates", type=int_list, default=[4], help="comma-separated rates, e.g. 4,8")
        parser.add_argument("--model", default=None, help="GMSA checkpoint directory (default: embedded model)")
        parser.add_argument("--limit", type=int, default=None, help="evaluate the first N rows only")
        parser.add_argument("--json", dest="json_path", default=None, help="write the rows to this JSON file")
        parser.add_argument("--plot", default=None, help="draw quality against rate into this PNG")
        parser.add_argument("--device", default=None, help="cpu, cuda, ...")
        parser.add_argument("--no-progress", dest="show_progress", action="store_false")
    recon.add_argument("--baseline", default=None, help="an ICAE-style checkpoint to evaluate beside the model")
    recon.add_argument(
        "--decoder", default="auto", choices=["auto", "keft", "original"], help="decoder that restates the text"
    )
    recon.add_argument(
        "--no-generate",
        dest="generate",
        action="store_false",
        help="likelihood only (nll, nll_other, nll_gain): one forward pass per passage, no restatement",
    )
    recon.add_argument(
        "--max-length", type=int, default=None, help="cut each passage to its first N tokens (as training's flag)"
    )
    qa.add_argument("--methods", type=_methods, default=None, help=",".join(QA_METHODS) + " (default: all available)")
    qa.add_argument(
        "--tuned-baseline",
        default=None,
        help="checkpoint of `gmsa train baseline` for full_context_tuned (default: the one beside the default model)",
    )
    qa.add_argument(
        "--group-by",
        metavar="FIELD",
        default=None,
        help="also print exact match per value of this field of the rows (e.g. type), into the JSON as 'groups'",
    )
    for parser in (recon, qa, probe):
        parser.set_defaults(func=run_eval)
    curves = tasks.add_parser("curves", help="plot a training run's loss and validation metrics (log.jsonl)")
    curves.add_argument(
        "--log",
        required=True,
        action="append",
        help="log.jsonl of a training run; repeat as LABEL=PATH to overlay runs (--log gm=a.jsonl --log icae=b.jsonl)",
    )
    curves.add_argument("--plot", required=True, help="PNG to write")
    curves.add_argument("--title", default="training", help="figure title")
    curves.set_defaults(func=run_curves)


def run_curves(args: argparse.Namespace) -> int:
    runs = dict(_labelled(log) for log in args.log)
    if len(runs) != len(args.log):
        raise SystemExit("gmsa eval curves: each --log needs its own label when several are given")
    series = plot_training_log(runs if len(runs) > 1 else next(iter(runs.values())), args.plot, args.title)
    for key, points in series.items():
        step, value = points[-1]
        print(f"{key}: {len(points)} points, last {value:.4f} at step {step}")
    return 0


def _labelled(log: str) -> tuple[str, str]:
    label, sep, path = log.partition("=")
    return (label, path) if sep else (Path(log).parent.name, log)


def run_eval(args: argparse.Namespace) -> int:
    from ..data.records import QARow, read_labels, read_rows
    from ..engine import GMSAEngine
    from ..engine.engine import default_tuned_baseline
    from ..engine.prompts import first_tokens

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    records = read_rows(args.data, "ae" if args.task == "recon" else "qa")[: args.limit]
    group_by = getattr(args, "group_by", None)
    groups = read_labels(args.data, group_by)[: args.limit] if group_by else None
    engine = GMSAEngine.from_pretrained(args.model, device=args.device)
    start = time.perf_counter()
    rows: list[Row]
    if args.task == "recon":
        options = {
            "decoder": args.decoder,
            "generate": args.generate,
            "max_length": args.max_length,
            "show_progress": args.show_progress,
        }
        rows = evaluate_reconstruction(engine, records, args.rates, **options)
        if args.baseline:
            baseline = GMSAEngine.from_pretrained(args.baseline, device=args.device)
            label = "icae" if baseline.config.paradigm == "memory-tokens" else "baseline"
            rows += evaluate_reconstruction(baseline, records, args.rates, method=label, **options)
        metric = "bleu" if args.generate else "nll_gain"
    elif args.task == "probe":
        rows = evaluate_answer_likelihood(engine, records, args.rates, show_progress=args.show_progress)
        metric = "margin_mean"
    else:
        tuned_dir = args.tuned_baseline or (None if args.model else default_tuned_baseline())
        methods = args.methods or [m for m in QA_METHODS if m != "full_context_tuned" or tuned_dir]
        if "full_context_tuned" in methods and not tuned_dir:
            raise SystemExit("full_context_tuned needs --tuned-baseline DIR (a checkpoint of `gmsa train baseline`)")
        tuned = GMSAEngine.from_pretrained(tuned_dir, device=args.device) if "full_context_tuned" in methods else None
        rows = evaluate_qa(engine, records, args.rates, methods, tuned_baseline=tuned, show_progress=args.show_progress)
        metric = "exact_match"
    print(format_table(rows))
    by_group = exact_match_by_group(rows, records, groups) if groups is not None else None
    if by_group is not None:
        print(f"\nexact match by {group_by}:\n{format_groups(by_group)}")
    payload: dict[str, Any] = {
        "rows": [r.to_dict() for r in rows],
        "task": args.task,
        "data": args.data,
        "model": args.model or "default",
        "baseline": getattr(args, "baseline", None),
        "max_length": getattr(args, "max_length", None),
        "examples": len(records),
        "seconds": round(time.perf_counter() - start, 1),
        "hardware": {"device": str(engine.device), "machine": platform.machine(), "python": platform.python_version()},
        # each method's answers (or restatements) in the order of the references, to read what a score stands for;
        # a restatement's reference is the passage as scored (cut to --max-length)
        "references": [
            {"question": r.question, "answers": list(r.answers)}
            if isinstance(r, QARow)
            else {
                "text": r.text if args.max_length is None else first_tokens(engine.tokenizer, r.text, args.max_length)
            }
            for r in records
        ],
        "outputs": [{"method": r.method, "rate": r.rate, "outputs": r.outputs} for r in rows if r.outputs],
        # per-row scores in the order of the references (the probe's margins, in nats)
        "scores": [{"method": r.method, "rate": r.rate, "scores": r.scores} for r in rows if r.scores],
    }
    if by_group is not None:
        payload["groups"] = {"field": group_by, "exact_match": by_group}
    if args.json_path:
        atomic_write_bytes(args.json_path, (json.dumps(payload, indent=2) + "\n").encode())
    if args.plot:
        plot_rows(rows, metric, args.plot, f"{PLOT_TITLES[args.task]}: {metric}")
    return 0
