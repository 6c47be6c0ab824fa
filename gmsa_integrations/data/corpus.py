"""Passage corpora: JSON Lines rows ``{"text": ..., "id"?: ..., ...}`` (other fields are metadata)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jsonl import iter_jsonl


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def read_corpus(path: str | os.PathLike) -> list[Passage]:
    """Read a corpus; a malformed line is a ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such corpus file")
    passages: list[Passage] = []
    seen: set[str] = set()
    for number, row in iter_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}:{number}: expected an object with a string field 'text'")
        passage_id = str(row.get("id", number))
        if passage_id in seen:
            raise ValueError(f"{path}:{number}: duplicate id {passage_id!r}")
        seen.add(passage_id)
        metadata = {k: v for k, v in row.items() if k not in ("text", "id")}
        passages.append(Passage(passage_id, row["text"], metadata))
    return passages
