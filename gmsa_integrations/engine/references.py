"""Soft-token references: ``<gmsa:FFFFFFFF:KEY>``, a short string that stands for a `SoftPrompt` in text.

Framework adapters put references where text goes (a LangChain ``page_content``, a LlamaIndex node's
text); they survive prompt templates and ``"\\n\\n".join``, and the engine swaps each one for its soft
tokens when it builds the decoder's input. The format is made, parsed and resolved here only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections import OrderedDict

from .checkpoint import tensors_digest
from .soft_prompt import SoftPrompt
from .store import SoftTokenStore

PREFIX = "<gmsa:"
PATTERN = re.compile(r"<gmsa:([0-9a-f]{8}):([0-9a-f]{64})>")
Segment = str | SoftPrompt
"""A piece of a prompt: text, or the soft tokens of one passage."""


def has_references(text: str) -> bool:
    """Whether ``text`` holds a soft-token reference (a scan only: nothing is looked up)."""
    return PATTERN.search(text) is not None


class ReferenceRegistry:
    """The soft prompts one engine has handed out references for (an LRU), with the store behind it."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        """How many referenced soft prompts stay in memory; older ones are re-read from the store, or are
        unknown without one (a reference normally lives for one query)."""
        self._entries: OrderedDict[str, SoftPrompt] = OrderedDict()
        self._lock = threading.Lock()

    def make(self, soft_prompt: SoftPrompt, fingerprint: str) -> str:
        """The reference for ``soft_prompt`` (made by the engine with ``fingerprint``), remembered."""
        key = soft_prompt.key
        if not key:  # made by hand: identify it by its content
            digest = hashlib.sha256()
            tensors_digest(digest, {"embeddings": soft_prompt.embeddings})
            key = digest.hexdigest()
            soft_prompt = dataclasses.replace(soft_prompt, key=key, fingerprint=fingerprint)
        with self._lock:
            self._entries[key] = soft_prompt
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return f"{PREFIX}{fingerprint[:8]}:{key}>"

    def resolve(self, text: str, fingerprint: str, store: SoftTokenStore | None = None) -> list[Segment]:
        """Split ``text`` into its non-empty plain-text pieces and the soft prompts its references stand for."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        segments: list[Segment] = []
        position = 0
        for match in PATTERN.finditer(text):
            segments.append(text[position : match.start()])
            segments.append(self._lookup(match.group(1), match.group(2), match.group(0), fingerprint, store))
            position = match.end()
        segments.append(text[position:])
        leftover = "".join(s for s in segments if isinstance(s, str))
        if PREFIX in leftover:
            bad = leftover[leftover.index(PREFIX) :][:40]
            raise ValueError(f"malformed soft-token reference {bad!r}")
        return [s for s in segments if not (isinstance(s, str) and not s)]

    def _lookup(
        self, short_fingerprint: str, key: str, reference: str, fingerprint: str, store: SoftTokenStore | None
    ) -> SoftPrompt:
        if short_fingerprint != fingerprint[:8]:
            raise ValueError(
                f"soft-token reference {reference[:20]}... was made by another GMSA engine "
                f"(fingerprint {short_fingerprint}, this engine {fingerprint[:8]})"
            )
        with self._lock:
            found = self._entries.get(key)
        if found is None and store is not None:
            found = store.get_by_key(fingerprint, key)
        if found is None:
            raise ValueError(
                f"unknown soft-token reference {reference[:20]}...: compress the passage with this engine "
                "(or give the engine the store it was indexed into) before generating"
            )
        return found
