"""docs/eval/independent_qa*.jsonl: questions written by hand, outside the generator, that the model card reports."""

from pathlib import Path

import pytest

from gmsa_integrations.training import read_rows

EVAL = Path(__file__).resolve().parents[2] / "docs" / "eval"


@pytest.mark.parametrize("name", sorted(path.stem for path in EVAL.glob("independent_qa*.jsonl")))
def test_independent_questions_are_qa_rows_answerable_from_their_passages(name):
    rows = read_rows(EVAL / f"{name}.jsonl", "qa")
    assert len(rows) >= 40
    for row in rows:
        assert len(row.passages) >= 2  # the gold passage(s) and a distractor
        assert any(row.answers[0].lower() in p.lower() for p in row.passages), row.question
