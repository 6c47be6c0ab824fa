"""Training and evaluation records: JSON Lines (or a local Hugging Face ``datasets`` directory) -> validated rows.

Autoencoder rows: ``{"text": ...}``. QA rows: ``{"question": ..., "answers": [...], "passages": [...]}``
or ``{"question": ..., "answers": [...], "context": "..."}``. Extra fields are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .jsonl import iter_jsonl

Task = Literal["ae", "qa", "mixed"]
"""``mixed``: each row is a QA row when it has a ``question``, else an autoencoder row."""


class DataError(ValueError):
    """A training file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class AERow:
    text: str


@dataclass(frozen=True)
class QARow:
    question: str
    answers: tuple[str, ...]
    passages: tuple[str, ...]


def _check_str(where: str, row: dict[str, Any], key: str) -> str:
    if key not in row:
        raise DataError(f"{where}: missing field {key!r}")
    if not isinstance(row[key], str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
    return row[key]


def _check_str_list(where: str, row: dict[str, Any], key: str) -> tuple[str, ...]:
    value = row[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field {key!r} must be a non-empty list of strings")
    return tuple(value)


def parse_row(row: Any, task: Task, where: str) -> AERow | QARow:
    """Validate one record; ``where`` (``file:line``) prefixes every error."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if task == "mixed":
        task = "qa" if "question" in row else "ae"
    if task == "ae":
        return AERow(_check_str(where, row, "text"))
    question = _check_str(where, row, "question")
    if "answers" not in row:
        raise DataError(f"{where}: missing field 'answers'")
    answers = _check_str_list(where, row, "answers")
    if "passages" in row:
        passages = _check_str_list(where, row, "passages")
    elif "context" in row:
        passages = (_check_str(where, row, "context"),)
    else:
        raise DataError(f"{where}: missing field 'passages' (or 'context')")
    return QARow(question, answers, passages)


def _records(path: Path) -> list[tuple[str, Any]]:
    """``(where, record)`` for each record of a ``.jsonl`` file or a ``datasets.save_to_disk`` directory."""
    if path.is_dir():
        try:
            from datasets import load_from_disk
        except ImportError as exc:  # pragma: no cover - datasets is a dev extra
            raise DataError(f"{path}: reading a datasets directory needs `pip install datasets`") from exc
        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):  # a DatasetDict: take its train split
            if "train" not in dataset:
                raise DataError(f"{path}: DatasetDict without a 'train' split (splits: {list(dataset.keys())})")
            dataset = dataset["train"]
        # Arrow fills a column missing from a row with None; treat that as an absent field
        return [(f"{path}:row {i}", {k: v for k, v in r.items() if v is not None}) for i, r in enumerate(dataset)]
    if path.is_file():
        return [(f"{path}:{number}", record) for number, record in iter_jsonl(path, DataError)]
    raise DataError(f"{path}: no such file or directory")


def read_rows(path: str | os.PathLike, task: Task) -> list[AERow | QARow]:
    """Read a ``.jsonl`` file or a ``datasets.save_to_disk`` directory into validated rows."""
    if task not in ("ae", "qa", "mixed"):
        raise ValueError(f"task must be 'ae', 'qa' or 'mixed', got {task!r}")
    rows = [parse_row(record, task, where) for where, record in _records(Path(path))]
    if not rows:
        raise DataError(f"{path}: contains no rows")
    return rows


def read_labels(path: str | os.PathLike, key: str) -> list[str]:
    """The string field ``key`` of every record, in the order of `read_rows` (a question's type, its source, ...)."""
    labels = []
    for where, record in _records(Path(path)):
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        labels.append(_check_str(where, record, key))
    return labels
