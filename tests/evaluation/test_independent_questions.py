"""docs/eval/independent_qa.jsonl: questions written by hand, outside the generator, that the model card reports."""

from pathlib import Path

from gmsa_integrations.training import read_rows

INDEPENDENT = Path(__file__).resolve().parents[2] / "docs" / "eval" / "independent_qa.jsonl"


def test_independent_questions_are_qa_rows_answerable_from_their_passages():
    rows = read_rows(INDEPENDENT, "qa")
    assert len(rows) >= 40
    for row in rows:
        assert len(row.passages) >= 2  # the gold passage(s) and a distractor
        assert any(row.answers[0].lower() in p.lower() for p in row.passages), row.question
