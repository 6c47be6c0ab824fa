"""`SoftTokenStore`: soft tokens computed once, at indexing time, and reused at query time.

Compression is query-independent, so a passage's soft tokens depend only on (text, rate, model).
Entries are keyed by sha256(model fingerprint, rate, text). An in-memory LRU sits in front of an
SQLite database in WAL mode: several processes read while one writes, every write is a transaction
(a writer killed with ``kill -9`` leaves only whole entries), and each entry carries a checksum so a
corrupted one is detected, dropped and recomputed, never returned. Tensors are stored as safetensors
bytes, never pickled.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from .soft_prompt import SoftPrompt

DB_NAME = "soft_tokens.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    rate INTEGER NOT NULL,
    source_tokens INTEGER NOT NULL,
    num_tokens INTEGER NOT NULL,
    tensor BLOB NOT NULL,
    checksum TEXT NOT NULL
);
"""


def entry_key(fingerprint: str, rate: int, text: str) -> str:
    digest = hashlib.sha256()
    for part in (fingerprint, str(rate), text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _encode(tensor: torch.Tensor) -> bytes:
    from safetensors.torch import save

    return save({"soft_tokens": tensor.detach().contiguous().cpu()})


def _decode(blob: bytes) -> torch.Tensor:
    from safetensors.torch import load

    return load(blob)["soft_tokens"]


class SoftTokenStore:
    """Persistent soft-token cache for one GMSA model.

    Example:
        >>> store = SoftTokenStore("index/soft_tokens")                       # doctest: +SKIP
        >>> engine = GMSAEngine.from_pretrained(store=store)                 # doctest: +SKIP
        >>> engine.compress(passages, rate=4)   # computed once, then read   # doctest: +SKIP
        >>> store.stats()                                                    # doctest: +SKIP
        {'hits': 0, 'misses': 3, 'entries': 3, 'corrupted': 0}

    Args:
        path: a directory (created if missing) holding ``soft_tokens.sqlite``.
        memory_entries: how many soft prompts the in-memory LRU keeps (0 disables it).
    """

    def __init__(self, path: str | os.PathLike, *, memory_entries: int = 4096) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        if isinstance(memory_entries, bool) or not isinstance(memory_entries, int) or memory_entries < 0:
            raise ValueError(f"memory_entries must be an int >= 0, got {memory_entries!r}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file; a SoftTokenStore path is a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.memory_entries = memory_entries
        self._lru: OrderedDict[str, SoftPrompt] = OrderedDict()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.hits = self.misses = self.corrupted = 0
        self._connection()  # fail early on an unreadable database

    # ------------------------------------------------------------------------------ database
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own connection
            db = self.path / DB_NAME
            try:
                conn = sqlite3.connect(db, timeout=30.0, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise ValueError(f"{db}: not a readable soft-token store ({exc})") from None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def fingerprint(self) -> str | None:
        """The fingerprint of the model this store belongs to (``None`` while it is empty)."""
        with self._lock:
            row = self._connection().execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        return row[0] if row else None

    def bind(self, fingerprint: str) -> None:
        """Claim an empty store for a model, or check that it already belongs to that model."""
        with self._lock:
            conn = self._connection()
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('fingerprint', ?)", (fingerprint,))
            owner = conn.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0]
        if owner != fingerprint:
            raise ValueError(
                f"the soft-token store at {self.path} was built by another model (fingerprint {owner[:12]}); "
                f"this engine's fingerprint is {fingerprint[:12]}. Use a new store directory for this model."
            )

    # ------------------------------------------------------------------------------ read / write
    def get_many(self, fingerprint: str, texts: Sequence[str], rate: int) -> list[SoftPrompt | None]:
        """Soft prompts for ``texts`` at ``rate`` (``None`` where absent or corrupted)."""
        self.bind(fingerprint)
        keys = [entry_key(fingerprint, rate, t) for t in texts]
        found: dict[str, SoftPrompt] = {}
        with self._lock:
            missing = []
            for key in keys:
                if key in self._lru:
                    self._lru.move_to_end(key)
                    found[key] = self._lru[key]
                else:
                    missing.append(key)
            conn = self._connection()
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = (
                    f"SELECT key, rate, source_tokens, num_tokens, tensor, checksum FROM entries WHERE key IN ({marks})"
                )
                for key, row_rate, source_tokens, num_tokens, blob, checksum in conn.execute(query, chunk):
                    sp = self._verified(key, row_rate, source_tokens, num_tokens, blob, checksum, fingerprint)
                    if sp is not None:
                        found[key] = sp
                        self._remember(key, sp)
            results = [found.get(k) for k in keys]
            hits = sum(r is not None for r in results)
            self.hits += hits
            self.misses += len(keys) - hits
        return results

    def _verified(
        self, key: str, rate: int, source_tokens: int, num_tokens: int, blob: bytes, checksum: str, fingerprint: str
    ) -> SoftPrompt | None:
        try:
            ok = hashlib.sha256(blob).hexdigest() == checksum
            tensor = _decode(blob) if ok else None
            ok = ok and tensor is not None and tensor.ndim == 2 and tensor.shape[0] == num_tokens
        except Exception:  # a damaged blob can fail inside the safetensors parser
            ok = False
        if not ok:
            self.corrupted += 1
            self._connection().execute("DELETE FROM entries WHERE key=?", (key,))
            return None
        return SoftPrompt(tensor, source_tokens=source_tokens, rate=rate, fingerprint=fingerprint, key=key)

    def put_many(self, fingerprint: str, texts: Sequence[str], rate: int, soft_prompts: Sequence[SoftPrompt]) -> None:
        """Store soft prompts (one transaction: all of them or, if the process dies, none)."""
        if len(texts) != len(soft_prompts):
            raise ValueError(f"got {len(texts)} texts but {len(soft_prompts)} soft prompts")
        self.bind(fingerprint)
        rows = []
        for text, sp in zip(texts, soft_prompts, strict=True):
            blob = _encode(sp.embeddings)
            key = entry_key(fingerprint, rate, text)
            rows.append((key, rate, sp.source_tokens, sp.num_tokens, blob, hashlib.sha256(blob).hexdigest()))
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for row, sp in zip(rows, soft_prompts, strict=True):
                self._remember(row[0], SoftPrompt(sp.embeddings, sp.source_tokens, rate, fingerprint, row[0]))

    def get_by_key(self, fingerprint: str, key: str) -> SoftPrompt | None:
        """The entry with this key (as carried by a soft-token reference), or ``None``."""
        self.bind(fingerprint)
        with self._lock:
            if key in self._lru:
                return self._lru[key]
            row = (
                self._connection()
                .execute(
                    "SELECT key, rate, source_tokens, num_tokens, tensor, checksum FROM entries WHERE key=?", (key,)
                )
                .fetchone()
            )
            if row is None:
                return None
            sp = self._verified(*row, fingerprint)
            if sp is not None:
                self._remember(key, sp)
            return sp

    def contains(self, fingerprint: str, text: str, rate: int) -> bool:
        key = entry_key(fingerprint, rate, text)
        with self._lock:
            if key in self._lru:
                return True
            return self._connection().execute("SELECT 1 FROM entries WHERE key=?", (key,)).fetchone() is not None

    def _remember(self, key: str, sp: SoftPrompt) -> None:
        if self.memory_entries == 0:
            return
        self._lru[key] = sp
        self._lru.move_to_end(key)
        while len(self._lru) > self.memory_entries:
            self._lru.popitem(last=False)

    # ------------------------------------------------------------------------------ housekeeping
    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def stats(self) -> dict[str, int]:
        """``hits``, ``misses`` (since this object was opened), ``entries`` on disk, ``corrupted`` dropped."""
        return {"hits": self.hits, "misses": self.misses, "entries": len(self), "corrupted": self.corrupted}

    def clear_memory(self) -> None:
        """Empty the in-memory LRU (the database is untouched)."""
        with self._lock:
            self._lru.clear()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SoftTokenStore({str(self.path)!r})"
