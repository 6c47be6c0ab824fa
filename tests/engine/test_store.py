import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from gmsa_integrations import GMSAEngine, SoftTokenStore
from gmsa_integrations.cli import main as cli_main
from tests.conftest import make_engine

TEXTS = ["Mira Solen was born in Kethport.", "Orvan Tools is based in Dalby.", ""]


def _equal(a, b):
    return len(a) == len(b) and all(torch.equal(x.embeddings, y.embeddings) for x, y in zip(a, b))


def test_second_compress_is_served_from_the_store(tmp_path):
    engine = make_engine(store=SoftTokenStore(tmp_path / "store"))
    first = engine.compress(TEXTS, rate=4)
    assert engine.store.stats() == {"hits": 0, "misses": 3, "entries": 3, "corrupted": 0}
    second = engine.compress(TEXTS, rate=4)
    assert engine.store.stats()["hits"] == 3
    assert _equal(first, second)
    engine.compress(TEXTS[:1], rate=8)  # another rate is another entry
    assert engine.store.stats()["entries"] == 4


def test_store_persists_across_processes_and_reloads(tmp_path):
    engine = make_engine()
    engine.save_pretrained(tmp_path / "model")
    engine.store = SoftTokenStore(tmp_path / "store")
    expected = engine.compress(TEXTS, rate=4)
    reopened = SoftTokenStore(tmp_path / "store")
    loaded = GMSAEngine.from_pretrained(tmp_path / "model", store=reopened)
    assert loaded.store is reopened
    assert _equal(loaded.compress(TEXTS, rate=4), expected)
    assert reopened.stats()["hits"] == 3 and reopened.stats()["misses"] == 0


def test_store_of_another_model_is_refused(tmp_path):
    make_engine(seed=0, store=SoftTokenStore(tmp_path / "store")).compress(TEXTS, rate=4)
    other = make_engine(seed=5)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="built by another model"):
        GMSAEngine.from_pretrained(tmp_path / "other", store=SoftTokenStore(tmp_path / "store"))
    other.store = SoftTokenStore(tmp_path / "store")
    with pytest.raises(ValueError, match="built by another model"):
        other.compress(TEXTS, rate=4)


def test_corrupted_entry_is_detected_and_recomputed(tmp_path):
    engine = make_engine(store=SoftTokenStore(tmp_path / "store", memory_entries=0))
    expected = engine.compress(TEXTS, rate=4)
    with sqlite3.connect(tmp_path / "store" / "soft_tokens.sqlite") as conn:
        blob = bytearray(conn.execute("SELECT tensor FROM entries WHERE num_tokens > 0 LIMIT 1").fetchone()[0])
        blob[-3] ^= 0xFF
        conn.execute(
            "UPDATE entries SET tensor=? WHERE rowid=(SELECT MIN(rowid) FROM entries WHERE num_tokens > 0)",
            (bytes(blob),),
        )
    again = engine.compress(TEXTS, rate=4)
    # the corrupted entry is recomputed alone, not in the original batch: equal up to float rounding
    assert len(again) == len(expected)
    assert all(torch.allclose(x.embeddings, y.embeddings, atol=1e-5) for x, y in zip(again, expected))
    assert engine.store.stats()["corrupted"] == 1
    assert engine.store.stats()["entries"] == 3  # recomputed and written back


def test_lru_front_evicts_and_falls_back_to_disk(tmp_path):
    store = SoftTokenStore(tmp_path / "store", memory_entries=1)
    engine = make_engine(store=store)
    expected = engine.compress(TEXTS, rate=4)
    assert len(store._lru) == 1
    assert _equal(engine.compress(TEXTS, rate=4), expected)
    assert store.stats()["hits"] == 3


WRITER = textwrap.dedent(
    """
    import sys
    from gmsa_integrations import GMSAEngine, SoftTokenStore
    engine = GMSAEngine.from_pretrained(sys.argv[1], store=SoftTokenStore(sys.argv[2]))
    i = 0
    while True:
        engine.compress([f"passage number {i} " * (1 + i % 7)], rate=4)
        i += 1
        if i == 5:
            print("ready", flush=True)
    """
)


def test_writer_killed_mid_write_leaves_only_complete_entries(tmp_path):
    engine = make_engine()
    engine.save_pretrained(tmp_path / "model")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "model"), str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = SoftTokenStore(tmp_path / "store", memory_entries=0)
    written = len(store)
    assert written >= 5
    texts = [f"passage number {i} " * (1 + i % 7) for i in range(written + 50)]
    stored = store.get_many(engine.fingerprint, texts, 4)
    assert store.stats()["corrupted"] == 0
    found = [(t, sp) for t, sp in zip(texts, stored) if sp is not None]
    assert len(found) == written
    for text, sp in found:  # one by one, as the writer computed them
        assert torch.equal(sp.embeddings, engine.compress([text], rate=4)[0].embeddings)


def test_index_build_cli_is_resumable(tmp_path, capsys):
    make_engine().save_pretrained(tmp_path / "model")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(f'{{"id": "p{i}", "text": "Passage {i} about Dalby."}}\n' for i in range(10)))
    args = [
        "index",
        "build",
        "--corpus",
        str(corpus),
        "--store",
        str(tmp_path / "store"),
        "--rates",
        "4,8",
        "--model",
        str(tmp_path / "model"),
    ]
    assert cli_main(args) == 0
    assert "'misses': 20" in capsys.readouterr().out
    assert cli_main(args) == 0
    assert "'hits': 20, 'misses': 0" in capsys.readouterr().out


def test_bad_store_arguments():
    with pytest.raises(TypeError, match="path"):
        SoftTokenStore(None)
    with pytest.raises(ValueError, match="memory_entries"):
        SoftTokenStore("/tmp/x-store", memory_entries=-1)
    with pytest.raises(TypeError, match="store"):
        make_engine(store="not a store")
