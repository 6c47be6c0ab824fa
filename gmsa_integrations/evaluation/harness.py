"""`gmsa eval`: reconstruction and question answering, measured the way the paper measures GMSA.

Reconstruction: a passage is compressed at rate r, and the decoder restates it from the soft tokens
after the AE instruction (``decoder="auto"``: the tuned decoder when the checkpoint has one, else the
frozen backbone the autoencoder was trained against; ``"original"`` forces the latter).

QA: every method answers ``QA_TEMPLATE`` with greedy decoding; only the context differs.
  - ``gmsa``: soft tokens of each passage (compressed per query, so compression time counts).
  - ``full_context``: the full passages as text, read by the backbone before KEFT.
  - ``full_context_tuned``: the full passages as text, read by the same backbone fine-tuned on the same QA
    data with the same decoder LoRA budget (``gmsa train baseline``): the fair comparison, since GMSA's
    decoder is tuned too.
  - ``truncate``: the first ceil(L/r) tokens of each passage (the soft-token budget), as text.
  - ``token_drop``: the ceil(L/r) tokens of each passage with the highest backbone surprisal,
    kept in order (LLMLingua-style), as text; scoring them counts as compression time.
  - ``no_context``: the question alone.

Probe (`evaluate_answer_likelihood`): the gold answer's likelihood after the ``gmsa`` prompt, from each row's own
soft tokens against another row's: evidence of reading long before the greedy answers are right.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.records import AERow, QARow
from ..engine import GMSAEngine, SoftPrompt
from ..engine.prompts import ANSWER_TEMPLATE, PASSAGE_SEPARATOR, QA_TEMPLATE, first_tokens
from ..extras import require
from . import metrics

QA_METHODS = ("gmsa", "full_context", "full_context_tuned", "truncate", "token_drop", "no_context")
ANSWER_TOKENS = 24


@dataclass
class Row:
    """One line of a results table (``rate`` is None for methods without a compression rate)."""

    method: str
    rate: int | None
    values: dict[str, float]
    outputs: list[str] = field(default_factory=list, repr=False)
    """What the method produced for each evaluated row, in input order: answers (QA) or restatements
    (reconstruction with generation), so that a score can be traced back to the text behind it."""
    scores: list[float] = field(default_factory=list, repr=False)
    """Each evaluated row's own score, in input order, where the measure is per row (the answer-likelihood
    probe's margin in nats), so that a mean can be traced back to the rows behind it."""

    def to_dict(self) -> dict[str, Any]:
        """The table line: method, rate and the scores (``outputs`` is kept apart; see ``gmsa eval --json``)."""
        return {"method": self.method, "rate": self.rate, **self.values}


def evaluate_reconstruction(
    engine: GMSAEngine,
    rows: Sequence[AERow],
    rates: Sequence[int],
    *,
    method: str = "gmsa",
    decoder: str = "auto",
    generate: bool = True,
    max_length: int | None = None,
    show_progress: bool = False,
) -> list[Row]:
    """Reconstruction quality at each rate.

    ``max_length`` cuts each passage to its first N tokens first, as ``gmsa train --max-length`` cuts the
    passages a model learns to restate: a model trained on short passages is measured on what it learned.

    Likelihood (teacher-forced, one forward pass per passage): ``nll``, nats per token of restating each
    passage from its own soft tokens; ``nll_other``, the same text from the next passage's soft tokens (what
    the decoder guesses without reading); ``nll_gain`` = ``nll_other`` - ``nll``, the nats per token the soft
    tokens carry. Low-noise, so it separates checkpoints long before generated text does.

    Generation (``generate=True``): greedy restatements scored by BLEU, ROUGE-L, exact match and prefix match.
    """
    if not rows:
        raise ValueError("evaluate_reconstruction needs at least one passage")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    results = []
    references = [
        row.text if max_length is None else first_tokens(engine.tokenizer, row.text, max_length) for row in rows
    ]
    instruction = engine.config.ae_instruction
    for rate in rates:
        soft = engine.compress(references, rate=rate)
        values: dict[str, float] = {}
        nll, nll_other, hypotheses = [], [], []
        for i, text in enumerate(
            tqdm(references, desc=f"recon {method} {rate}x", leave=False, disable=not show_progress)
        ):
            nll.append(-statistics.fmean(engine.log_likelihood(instruction, text, [soft[i]], decoder=decoder)))
            if len(references) > 1:
                other = soft[(i + 1) % len(references)]
                nll_other.append(-statistics.fmean(engine.log_likelihood(instruction, text, [other], decoder=decoder)))
            if generate:
                budget = engine.count_tokens(text) + 16
                hypotheses.append(
                    engine.generate(instruction, [soft[i]], max_new_tokens=budget, decoder=decoder).strip()
                )
        values["nll"] = statistics.fmean(nll)
        if nll_other:
            values["nll_other"] = statistics.fmean(nll_other)
            values["nll_gain"] = values["nll_other"] - values["nll"]
        if generate:
            pairs = list(zip(hypotheses, references, strict=True))
            values |= {
                "bleu": metrics.bleu(hypotheses, references),
                "rouge_l": statistics.fmean(metrics.rouge_l(h, r) for h, r in pairs),
                "exact": statistics.fmean(float(h == r.strip()) for h, r in pairs),
                "prefix_match": statistics.fmean(metrics.prefix_match(h, r) for h, r in pairs),
            }
        results.append(Row(method, rate, {**values, "n": len(references)}, hypotheses))
    return results


def surprisal(engine: GMSAEngine, ids: list[int]) -> torch.Tensor:
    """-log p(token_t | BOS, tokens before t) under the original backbone, one value per token."""
    bos = engine.tokenizer.bos_token_id
    prefix = [bos] if bos is not None else []
    inputs = torch.tensor([prefix + ids], device=engine.device)
    with torch.inference_mode(), engine.model.original_decoder():
        logits = engine.model.backbone(input_ids=inputs).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    scores = log_probs[:-1].gather(1, inputs[0, 1:, None]).squeeze(1).neg()
    if not prefix:  # without BOS the first token has no prediction: always keep it
        scores = torch.cat([scores.new_tensor([math.inf]), scores])
    return scores


def _budget(n_tokens: int, rate: int) -> int:
    return math.ceil(n_tokens / rate)


def truncate_passage(engine: GMSAEngine, passage: str, rate: int) -> str:
    ids = engine.tokenizer(passage, add_special_tokens=False)["input_ids"]
    return engine.tokenizer.decode(ids[: _budget(len(ids), rate)])


def drop_tokens(engine: GMSAEngine, passage: str, rate: int) -> str:
    ids = engine.tokenizer(passage, add_special_tokens=False)["input_ids"]
    if not ids:
        return ""
    keep = torch.topk(surprisal(engine, ids), _budget(len(ids), rate)).indices.sort().values.tolist()
    return engine.tokenizer.decode([ids[i] for i in keep])


def _gmsa_prompt(engine: GMSAEngine, soft: Sequence[SoftPrompt], row: QARow) -> str:
    """The ``gmsa`` method's prompt: each passage's soft-token reference in place of its text."""
    context = PASSAGE_SEPARATOR.join(engine.reference(sp) for sp in soft)
    return QA_TEMPLATE.format(context=context, question=row.question)


def _answer_with(engine: GMSAEngine, method: str, row: QARow, rate: int, tuned: GMSAEngine | None = None) -> str:
    options: dict[str, Any] = {"max_new_tokens": ANSWER_TOKENS, "stop": ["\n"]}
    if method == "full_context_tuned":
        if tuned is None:
            raise ValueError("method full_context_tuned needs the tuned baseline (tuned_baseline=, --tuned-baseline)")
        prompt = QA_TEMPLATE.format(context=PASSAGE_SEPARATOR.join(row.passages), question=row.question)
        return tuned.generate(prompt, decoder="keft", **options)
    if method == "gmsa":
        return engine.generate(_gmsa_prompt(engine, engine.compress(list(row.passages), rate=rate), row), **options)
    passages: dict[str, Callable[[str], str]] = {
        "full_context": lambda p: p,
        "truncate": lambda p: truncate_passage(engine, p, rate),
        "token_drop": lambda p: drop_tokens(engine, p, rate),
    }
    if method == "no_context":
        context = ""
    elif method in passages:
        context = PASSAGE_SEPARATOR.join(passages[method](p) for p in row.passages)
    else:
        raise ValueError(f"unknown QA method {method!r}; choose from {', '.join(QA_METHODS)}")
    prompt = QA_TEMPLATE.format(context=context, question=row.question)
    return engine.generate(prompt, decoder="original", **options)


def evaluate_qa(
    engine: GMSAEngine,
    rows: Sequence[QARow],
    rates: Sequence[int],
    methods: Sequence[str] | None = None,
    *,
    tuned_baseline: GMSAEngine | None = None,
    show_progress: bool = False,
) -> list[Row]:
    """Exact match, F1 and median end-to-end latency (seconds per question) of each method.

    ``methods``: default every method, ``full_context_tuned`` only when ``tuned_baseline`` (the engine of
    ``gmsa train baseline``, which that method reads with) is given.
    """
    if methods is None:
        methods = [m for m in QA_METHODS if m != "full_context_tuned" or tuned_baseline is not None]
    unknown = [m for m in methods if m not in QA_METHODS]
    if unknown:
        raise ValueError(f"unknown QA method(s) {unknown}; choose from {', '.join(QA_METHODS)}")
    if "full_context_tuned" in methods and tuned_baseline is None:
        raise ValueError("method full_context_tuned needs tuned_baseline (a checkpoint of `gmsa train baseline`)")
    results = []
    for method in methods:
        for rate in rates if method in ("gmsa", "truncate", "token_drop") else [None]:
            ems, f1s, seconds, answers = [], [], [], []
            desc = f"qa {method}" + (f" {rate}x" if rate else "")
            for row in tqdm(rows, desc=desc, leave=False, disable=not show_progress):
                start = time.perf_counter()
                answer = _answer_with(engine, method, row, rate or 1, tuned_baseline).strip()
                seconds.append(time.perf_counter() - start)
                answers.append(answer)
                ems.append(metrics.exact_match(answer, row.answers))
                f1s.append(metrics.f1(answer, row.answers))
            values = {
                "exact_match": statistics.fmean(ems),
                "f1": statistics.fmean(f1s),
                "median_latency_s": statistics.median(seconds),
                "n": len(rows),
            }
            results.append(Row(method, rate, values, answers))
    return results


def evaluate_answer_likelihood(
    engine: GMSAEngine, rows: Sequence[QARow], rates: Sequence[int], *, show_progress: bool = False
) -> list[Row]:
    """The likelihood probe: does reading a row's passages make its gold answer likelier?

    For each row, ``log p(answer)`` (the first gold answer, teacher-forced after the ``gmsa`` method's prompt) is
    scored once from the soft tokens of the row's own passages and once from the next row's (cyclically).
    The margin, own minus other, is what the soft tokens tell the decoder about this answer; a decoder that
    guesses from the question alone scores both the same. Like ``nll_gain`` for reconstruction, it moves long
    before greedy answers turn right, so it separates checkpoints on a few dozen questions.

    Values per rate: ``wins`` (share of rows whose margin is > 0), ``margin_mean`` and ``margin_median`` (nats),
    ``answer_logp`` (mean own ``log p``), ``n``; each row's margin is kept in `Row.scores`.
    """
    if len(rows) < 2:
        raise ValueError(f"the answer-likelihood probe compares each row with another one: got {len(rows)} row(s)")
    results = []
    for rate in rates:
        soft = [engine.compress(list(row.passages), rate=rate) for row in rows]
        own, margins = [], []
        for i, row in enumerate(tqdm(rows, desc=f"probe {rate}x", leave=False, disable=not show_progress)):
            answer = ANSWER_TEMPLATE.format(answer=row.answers[0])
            mine, other = (
                sum(engine.log_likelihood(_gmsa_prompt(engine, passages, row), answer))
                for passages in (soft[i], soft[(i + 1) % len(rows)])
            )
            own.append(mine)
            margins.append(mine - other)
        values = {
            "wins": statistics.fmean(float(m > 0) for m in margins),
            "margin_mean": statistics.fmean(margins),
            "margin_median": statistics.median(margins),
            "answer_logp": statistics.fmean(own),
            "n": len(rows),
        }
        results.append(Row("gmsa", rate, values, scores=margins))
    return results


def _fixed_width(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def exact_match_by_group(
    results: Sequence[Row], rows: Sequence[QARow], groups: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Exact match of each QA result line within each group of questions (``groups[i]`` labels ``rows[i]``,
    e.g. its question type): ``{"gmsa 4x": {group: {"exact_match": ..., "n": ...}}}``, groups sorted.

    A mean over all questions hides which kinds survive compression: a closed set of answers (jobs,
    industries) is easier to guess than a name or a date that must be read from the passage.
    """
    if len(groups) != len(rows):
        raise ValueError(f"one group label per row: {len(groups)} labels for {len(rows)} rows")
    table: dict[str, dict[str, dict[str, float]]] = {}
    for result in results:
        if len(result.outputs) != len(rows):
            raise ValueError(f"{result.method}: {len(result.outputs)} answers for {len(rows)} rows")
        scores: dict[str, list[float]] = {}
        for label, answer, row in zip(groups, result.outputs, rows, strict=True):
            scores.setdefault(label, []).append(metrics.exact_match(answer, row.answers))
        name = result.method + ("" if result.rate is None else f" {result.rate}x")
        table[name] = {g: {"exact_match": statistics.fmean(s), "n": len(s)} for g, s in sorted(scores.items())}
    return table


def format_groups(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """`exact_match_by_group` as a fixed-width table: one line per group, one column per result line."""
    columns = list(table)
    groups = list(dict.fromkeys(g for per_group in table.values() for g in per_group))
    lines = [["group", "n", *columns]]
    for group in groups:
        cells = [group, str(next(t[group]["n"] for t in table.values() if group in t))]
        cells += [f"{table[c][group]['exact_match']:.3f}" if group in table[c] else "-" for c in columns]
        lines.append(cells)
    return _fixed_width(lines)


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width table of the rows (numbers to three decimals)."""
    keys = [k for k in rows[0].values] if rows else []
    header = ["method", "rate", *keys]
    lines = [header]
    for row in rows:
        cells = [row.method, "-" if row.rate is None else f"{row.rate}x"]
        cells += [f"{v:.3f}" if isinstance(v, float) else str(v) for v in (row.values[k] for k in keys)]
        lines.append(cells)
    return _fixed_width(lines)


def plot_rows(rows: Sequence[Row], metric: str, path: str, title: str) -> None:
    """Quality against compression rate, one line per method (methods without a rate as flat lines)."""
    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r.rate for r in rows if r.rate is not None})
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        if mine[0].rate is None:
            ax.axhline(mine[0].values[metric], linestyle="--", label=method, color=None)
        else:
            mine.sort(key=lambda r: r.rate)
            ax.plot([r.rate for r in mine], [r.values[metric] for r in mine], marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xticks(rates or [1])
    ax.set_xticklabels([f"{r}x" for r in rates] or ["1x"])
    ax.set_xlabel("compression rate")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_training_log(path: str) -> dict[str, list[tuple[int, float]]]:
    """``log.jsonl`` of a training run as ``{metric: [(step, value), ...]}`` (loss and every ``val_*``)."""
    import json

    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            for key, value in record.items():
                if (key == "loss" or key.startswith("val_")) and isinstance(value, (int, float)):
                    series.setdefault(key, []).append((int(record["step"]), float(value)))
    if "loss" not in series:
        raise ValueError(f"{path}: no loss records (is it a training log.jsonl?)")
    return series


def plot_training_log(
    path: str | Mapping[str, str], png: str, title: str = "training"
) -> dict[str, list[tuple[int, float]]]:
    """Training loss with the held-out likelihoods (left, nats per token) and held-out scores (right, 0-1)
    against the step; returns the series.

    ``path`` is one ``log.jsonl``, or ``{run label: log.jsonl}`` to overlay runs (one colour per run, one line
    style per metric); the series are then keyed ``"label: metric"``.
    """
    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {"": path} if isinstance(path, str) else dict(path)
    if not runs:
        raise ValueError("plot_training_log needs at least one log")
    logs = {label: read_training_log(log) for label, log in runs.items()}
    series = {f"{label}: {key}" if label else key: v for label, log in logs.items() for key, v in log.items()}
    # likelihoods share the loss's unit (nats per token); scores in 0-1 get their own panel
    has_scores = any(k.startswith("val_") and not k.startswith("val_nll") for log in logs.values() for k in log)
    fig, axes = plt.subplots(1, 2 if has_scores else 1, figsize=(11 if has_scores else 6, 4), squeeze=False)
    nats, scores = axes[0][0], axes[0][-1]
    colours, styles = plt.rcParams["axes.prop_cycle"].by_key()["color"], ("-", "--", ":", "-.")
    for i, (label, log) in enumerate(logs.items()):
        prefix = f"{label}: " if label else ""
        run_style = {"color": colours[i % len(colours)], "alpha": 0.6} if label else {}
        nats.plot(*zip(*log["loss"], strict=True), label=f"{prefix}training loss", **run_style)
        for n, key in enumerate(k for k in log if k.startswith("val_")):
            axis = nats if key.startswith("val_nll") else scores
            style = {"color": run_style["color"], "linestyle": styles[n % len(styles)]} if label else {}
            axis.plot(*zip(*log[key], strict=True), marker="o", label=prefix + key.removeprefix("val_"), **style)
    nats.set_ylabel("nats per target token")
    if has_scores:
        scores.set_ylabel("held-out score (0-1)")
        scores.set_ylim(0, 1)
    for axis in axes[0]:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if len(axis.lines) > 1 or (has_scores and axis is scores):
            axis.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return series
