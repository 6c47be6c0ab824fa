import json

from gmsa_integrations.data.synth import build_world, generate, templates_per_fact
from gmsa_integrations.training import read_rows


def test_every_fact_type_has_at_least_30_templates():
    counts = templates_per_fact()
    assert len(counts) == 13 and min(counts.values()) >= 30


def test_generation_is_deterministic_and_in_training_formats(tmp_path):
    counts = generate(tmp_path / "a", seed=3, train_worlds=1, scale=0.2)
    generate(tmp_path / "b", seed=3, train_worlds=1, scale=0.2)
    for name in ("ae_train", "qa_train", "qa_test", "corpus"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    assert len(read_rows(tmp_path / "a" / "ae_train.jsonl", "ae")) == counts["ae_train"]
    qa = read_rows(tmp_path / "a" / "qa_test.jsonl", "qa")
    assert len(qa) == counts["qa_test"]
    for row in qa:  # every answer is stated in one of the row's passages
        assert any(row.answers[0] in p for p in row.passages)


def test_test_split_uses_held_out_name_parts():
    train = build_world(1, held_out=False, people=30, orgs=10, places=8)
    test = build_world(2, held_out=True, people=30, orgs=10, places=8)
    train_words = {w for e in train.people for w in e.name.split()}
    test_words = {w for e in test.people for w in e.name.split()}
    assert not train_words & test_words


def test_two_hop_questions_need_two_passages(tmp_path):
    generate(tmp_path, seed=0, train_worlds=1, scale=0.2)
    rows = [json.loads(line) for line in (tmp_path / "qa_validation.jsonl").read_text().splitlines()]
    two_hop = [r for r in rows if "." in r["type"]]
    assert two_hop
    assert {r["type"] for r in two_hop} >= {"employer.hq", "birth_city.country"}
