"""Evaluation: reconstruction and QA metrics, the answer-likelihood probe, the text-compression baselines, and
``gmsa eval``."""

from .harness import (
    QA_METHODS,
    Row,
    evaluate_answer_likelihood,
    evaluate_qa,
    evaluate_reconstruction,
    exact_match_by_group,
    format_groups,
    format_table,
    plot_rows,
)
from .metrics import bleu, exact_match, f1, normalize_answer, prefix_match, rouge_l

__all__ = [
    "QA_METHODS",
    "Row",
    "bleu",
    "evaluate_answer_likelihood",
    "evaluate_qa",
    "evaluate_reconstruction",
    "exact_match",
    "exact_match_by_group",
    "f1",
    "format_groups",
    "format_table",
    "normalize_answer",
    "plot_rows",
    "prefix_match",
    "rouge_l",
]
