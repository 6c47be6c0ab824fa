"""Argument checks shared by the engine, its adapters and the command line: one rule per kind of argument."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_positive_int(name: str, value: Any) -> int:
    """``value`` itself when it is an int >= 1; else a TypeError or ValueError that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """``texts`` as a list when it is a sequence of str (a bare str is refused: it is one text, not a list)."""
    if texts is None:
        raise TypeError(f"{name} must be a list of str, got None")
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of str, got a single str (wrap it in a list)")
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return list(texts)


def parse_positive_ints(text: str, name: str = "value") -> list[int]:
    """``"4,8"`` -> ``[4, 8]``; anything else (empty, non-integer, < 1) is a ValueError naming ``name``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be comma-separated positive ints such as '4,8', got {text!r}")
    return values


def check_compression_options(rate: Any, target_tokens: Any = None, batch_size: Any = 16) -> None:
    """The options every compression call takes (the engine's and both adapters')."""
    check_positive_int("rate", rate)
    check_positive_int("batch_size", batch_size)
    if target_tokens is not None:
        check_positive_int("target_tokens", target_tokens)
