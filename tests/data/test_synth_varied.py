import json
import re
import sys

import pytest

from gmsa_integrations.data.synth import FIELDS, TITLES, generate
from gmsa_integrations.data.synth_varied import build_world


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_varied_world_is_deterministic_and_states_every_answer(tmp_path):
    counts = generate(tmp_path / "a", seed=3, train_worlds=1, scale=0.2, style="varied")
    generate(tmp_path / "b", seed=3, train_worlds=1, scale=0.2, style="varied")
    for name in ("ae_train", "qa_train", "qa_test", "corpus"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    qa = _rows(tmp_path / "a" / "qa_test.jsonl")
    assert len(qa) == counts["qa_test"]
    for row in qa:
        assert any(row["answers"][0] in p for p in row["passages"]), row["question"]
    assert {r["type"] for r in qa} >= {"birth_city", "employer.founder", "hq.country"}


def test_varied_world_differs_from_the_templated_one(tmp_path):
    generate(tmp_path / "t", seed=3, train_worlds=1, scale=0.2)
    generate(tmp_path / "v", seed=3, train_worlds=1, scale=0.2, style="varied")
    assert (tmp_path / "t" / "ae_train.jsonl").read_bytes() != (tmp_path / "v" / "ae_train.jsonl").read_bytes()


def test_varied_values_are_open_and_passages_use_pronouns():
    world = build_world(7, held_out=False)
    titles = {p.facts["title"] for p in world.people}
    fields = {p.facts["field"] for p in world.people}
    assert len(titles - set(TITLES)) > len(TITLES) and len(fields - set(FIELDS)) > len(FIELDS)
    dates = [p.facts["birth_date"] for p in world.people]
    assert any(re.fullmatch(r"\d+ \w+ \d{4}", d) for d in dates) and any("," in d for d in dates)
    people = [world.passages[p.name] for p in world.people]
    assert sum(bool(re.search(r"\. (He|She) ", text)) for text in people) > len(people) // 3
    assert not any("According to local records" in text for text in world.passages.values())


def test_varied_test_split_uses_held_out_name_parts():
    train = build_world(1, held_out=False, people=40, orgs=10, places=8)
    test = build_world(2, held_out=True, people=40, orgs=10, places=8)
    train_first = {p.name.split()[0] for p in train.people}
    test_first = {p.name.split()[0] for p in test.people}
    assert not train_first & test_first


def test_unknown_style_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="style must be one of templated, varied"):
        generate(tmp_path, style="fancy")


def test_real_names_world_is_deterministic_and_states_every_answer(tmp_path):
    generate(tmp_path / "a", seed=2, train_worlds=1, scale=0.2, style="real-names")
    generate(tmp_path / "b", seed=2, train_worlds=1, scale=0.2, style="real-names")
    for name in ("ae_train", "qa_train", "qa_test"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    for row in _rows(tmp_path / "a" / "qa_test.jsonl"):
        assert any(row["answers"][0] in p for p in row["passages"]), row["question"]
    # the syllable world's names are ASCII; real names of other languages are not always
    text = (tmp_path / "a" / "ae_train.jsonl").read_text(encoding="utf-8")
    assert re.search(r"[^\x00-\x7f]", json.loads(text.splitlines()[0])["text"] + text)


def test_real_names_test_split_draws_on_other_languages():
    def surnames(world):
        return {p.name.split()[-1] for p in world.people}

    train_a = surnames(build_world(1, held_out=False, people=60, orgs=5, places=5, name_source="real"))
    train_b = surnames(build_world(2, held_out=False, people=60, orgs=5, places=5, name_source="real"))
    test = surnames(build_world(3, held_out=True, people=60, orgs=5, places=5, name_source="real"))
    assert len(test & (train_a | train_b)) < len(train_a & train_b)


def test_real_names_without_faker_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "faker", None)
    with pytest.raises(ImportError, match=r"pip install 'gmsa-integrations\[data\]'"):
        build_world(1, held_out=False, name_source="real")
    with pytest.raises(ValueError, match="name_source must be"):
        build_world(1, held_out=False, name_source="klingon")
