import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_has_help(script, monkeypatch, capsys):
    # in this process, which has imported torch and both frameworks already: a subprocess each costs ~13 s
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0 and "usage" in capsys.readouterr().out


def test_train_your_own_runs_with_defaults(tmp_path):
    script = Path(__file__).parents[2] / "examples" / "train_your_own.py"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--steps", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "answer from" in result.stdout
    assert (tmp_path / "keft" / "gmsa_config.json").is_file()


@pytest.mark.parametrize(
    ("script", "extra", "expected"),
    [
        ("langchain_rag.py", [], "A: "),
        ("langchain_rag.py", ["--stream"], "A: "),
        ("llama_index_query_engine.py", [], "score "),
        # a two-hop question: the employer's passage comes in as a title link of the person's
        ("llama_index_query_engine.py", ["--question", "What industry is the employer of Kirsi Panur in?"], "linked"),
        ("precompute_store.py", [], "read back"),
        ("evaluate.py", ["--limit", "2", "--rates", "4"], "wrote"),
    ],
)
def test_example_runs_with_its_defaults(script, extra, expected, tmp_path):
    path = Path(__file__).parents[2] / "examples" / script
    if script == "evaluate.py":
        extra = [*extra, "--out", str(tmp_path / "eval")]
    result = subprocess.run(
        [sys.executable, str(path), *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
    if script == "evaluate.py":
        probe = json.loads((tmp_path / "eval" / "probe.json").read_text())
        assert probe["rows"][0]["n"] == len(probe["scores"][0]["scores"]) == 2
