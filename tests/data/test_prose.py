"""Offline English prose for the autoencoder: clean passages, split by source module."""

import json

import pytest

from gmsa_integrations.data import prose

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("prose")
    counts = prose.generate(out, min_chars=150, max_chars=450)
    rows = {s: [json.loads(x) for x in (out / f"prose_{s}.jsonl").read_text().splitlines()] for s in SPLITS}
    return counts, rows


def test_thousands_of_passages_within_the_length_bounds(written):
    counts, rows = written
    assert counts["prose_train"] > 2000 and counts["prose_test"] > 50
    for split_rows in rows.values():
        assert all(150 <= len(r["text"]) <= 450 for r in split_rows)
        assert not [r for r in split_rows if ">>>" in r["text"] or "\n" in r["text"]]


def test_held_out_passages_come_from_sources_never_trained_on(written):
    _, rows = written
    sources = {split: {r["source"] for r in split_rows} for split, split_rows in rows.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["validation"]
    texts = [r["text"] for split_rows in rows.values() for r in split_rows]
    assert len(texts) == len(set(texts))


def test_sentences_are_whole_and_code_is_dropped():
    text = "Return the sum of both numbers. It never fails on any input.\n\n    >>> add(1, 2)\n    3\n\nShort one."
    assert list(prose.passages(text, 10, 40)) == ["Return the sum of both numbers.", "It never fails on any input."]
    with pytest.raises(ValueError, match="min_chars"):
        prose.generate("unused", min_chars=0)


def test_installed_packages_add_their_docstrings_split_by_module(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fakepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    sentences = " ".join(f"The widget number {i} keeps its colour when the owner repaints the wall." for i in range(4))
    for i in range(30):
        (package / f"mod{i}.py").write_text(f'"""Module {i}. {sentences}"""\n\ndef f():\n    """{sentences}"""\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    counts = prose.generate(tmp_path / "out", packages=["fakepkg"])
    rows = [json.loads(x) for s in SPLITS for x in (tmp_path / "out" / f"prose_{s}.jsonl").read_text().splitlines()]
    from_package = [r for r in rows if r["source"].startswith("package:fakepkg/")]
    assert {r["source"] for r in from_package} == {f"package:fakepkg/mod{i}.py" for i in range(30)}
    assert sum(counts.values()) == len(rows)
    with pytest.raises(ValueError, match="not installed"):
        prose.generate(tmp_path / "out2", packages=["no_such_package_here"])
