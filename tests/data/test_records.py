import json

import pytest

from gmsa_integrations.data.records import DataError, read_labels, read_rows

ROWS = [
    {"question": "Where was Mira born?", "answers": ["Kethport"], "context": "Mira was born in Kethport.", "type": "a"},
    {"question": "Who founded Orvan?", "answers": ["Tamsin"], "context": "Tamsin founded Orvan.", "type": "b"},
]


def test_labels_line_up_with_the_rows(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert [r.question for r in read_rows(path, "qa")] == ["Where was Mira born?", "Who founded Orvan?"]
    assert read_labels(path, "type") == ["a", "b"]
    untyped = {k: v for k, v in ROWS[1].items() if k != "type"}
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(untyped) + "\n")
    with pytest.raises(DataError, match=r"qa.jsonl:3: missing field 'type'"):
        read_labels(path, "type")


def test_labels_of_a_datasets_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert read_labels(tmp_path / "ds", "type") == ["a", "b"]
