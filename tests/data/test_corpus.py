import pytest

from gmsa_integrations.data.corpus import read_corpus


def test_corpus_rows_become_passages_with_metadata(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "One.", "title": "T"}\n\n{"text": "Two."}\n')
    passages = read_corpus(path)
    assert [(p.id, p.text, p.metadata) for p in passages] == [("a", "One.", {"title": "T"}), ("3", "Two.", {})]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "x"}\n{oops\n', r"c.jsonl:2: invalid JSON"),
        ('{"txt": "x"}\n', r"c.jsonl:1: expected an object"),
        ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', r"c.jsonl:2: duplicate id"),
    ],
)
def test_malformed_corpus_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_corpus(path)
