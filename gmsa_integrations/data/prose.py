"""Real English prose that every machine has offline: the Python documentation shipped with the interpreter.

Sources: ``pydoc_data.topics`` (the language reference's help topics) and the docstrings of the standard
library's modules, classes and functions, read with ``ast`` (nothing is imported). The text is cleaned
(doctest and code lines dropped, whitespace collapsed), cut at sentence boundaries into passages of a
few sentences, de-duplicated, and split into train/validation/test **by source module**, so held-out
passages come from modules the model never saw.

Why this text: autoencoder training on one family of templates lets a tunable decoder learn the
templates instead of reading the soft tokens; varied prose removes that shortcut, and it is available
with no download wherever Python runs.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import random
import re
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..io import atomic_write_bytes

SKIPPED_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "__pycache__"}
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|[$%#]|[-=~*^]{3,}|[|+])|[{};]\s*$|\w+\(.*\)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


def _clean(text: str) -> list[str]:
    """Paragraphs of prose from a docstring or help topic (code, tables and headings dropped)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or any(_CODE_LINE.search(line) for line in lines):
            continue
        if len(lines) > 1 and all(line.startswith((" " * 4, "\t")) for line in lines[1:]) and ":" in lines[0]:
            continue  # an argument table, e.g. "name -- description"
        paragraph = " ".join(line.strip() for line in lines)
        words = paragraph.split()
        if len(words) < 8 or sum(w[:1].isalpha() for w in words) < 0.8 * len(words):
            continue
        paragraphs.append(paragraph)
    return paragraphs


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def package_root(name: str) -> Path:
    """The directory (or file) of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is not None and not spec.origin and spec.submodule_search_locations:  # a namespace package
        return Path(next(iter(spec.submodule_search_locations)))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"package {name!r} is not installed (or has no Python source files)")
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def _module_texts(root: Path, prefix: str) -> Iterator[tuple[str, str]]:
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    for path in files:
        relative = path.relative_to(root.parent if root.is_file() else root)
        if SKIPPED_DIRS & set(relative.parts):
            continue
        text = "\n\n".join(_docstrings(path))
        if text:
            yield f"{prefix}{relative.as_posix()}", text


def sources(packages: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """``(source name, text)`` for every help topic and standard-library module with docstrings, then for
    every module of the installed ``packages`` (third-party docstrings: more varied prose, same split rule)."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"topic:{name}", topics[name]
    yield from _module_texts(Path(sysconfig.get_paths()["stdlib"]), "module:")
    for name in packages:
        yield from _module_texts(package_root(name), f"package:{name}/")


def passages(text: str, min_chars: int, max_chars: int) -> Iterator[str]:
    """Whole sentences packed into passages of ``min_chars``..``max_chars`` characters."""
    for paragraph in _clean(text):
        current = ""
        for sentence in _SENTENCE_END.split(paragraph):
            if len(sentence) > max_chars:
                continue
            if current and len(current) + 1 + len(sentence) > max_chars:
                if len(current) >= min_chars:
                    yield current
                current = ""
            current = f"{current} {sentence}".strip()
        if len(current) >= min_chars:
            yield current


def split_of(source: str, validation: float, test: float) -> str:
    point = int(hashlib.sha256(source.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if point < test else "validation" if point < test + validation else "train"


def generate(
    out: str | Path,
    *,
    min_chars: int = 150,
    max_chars: int = 450,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 0,
    packages: Sequence[str] = (),
) -> dict[str, int]:
    """Write ``prose_{train,validation,test}.jsonl`` (``{"text", "source"}`` rows); returns row counts.

    ``packages`` adds the docstrings of installed third-party packages (e.g. ``numpy``), which are read
    from source with ``ast``, never imported. Which passages exist then depends on the installed versions."""
    if not 0 < min_chars <= max_chars:
        raise ValueError(f"need 0 < min_chars <= max_chars, got {min_chars} and {max_chars}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    seen: set[str] = set()
    for source, text in sources(packages):
        for passage in passages(text, min_chars, max_chars):
            if passage not in seen:
                seen.add(passage)
                splits[split_of(source, validation, test)].append({"text": passage, "source": source})
    counts = {}
    for split, rows in splits.items():
        random.Random(f"{seed}:{split}").shuffle(rows)
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        atomic_write_bytes(out / f"prose_{split}.jsonl", lines.encode())
        counts[f"prose_{split}"] = len(rows)
    return counts
