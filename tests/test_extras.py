"""Installation extras: the engine and training import without either framework; a missing framework is an
ImportError that names the extra to install."""

import subprocess
import sys

import pytest

FRAMEWORKS = ["langchain_core", "llama_index", "faiss", "sentence_transformers", "sacrebleu", "matplotlib"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_engine_and_training_import_no_framework():
    result = _run(
        "import sys, gmsa_integrations, gmsa_integrations.training, gmsa_integrations.engine\n"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "package", "extra"),
    [("langchain_core", "langchain", "langchain"), ("llama_index", "llama_index", "llama-index")],
)
def test_an_adapter_without_its_framework_names_the_extra(blocked, package, extra):
    result = _run(f"import sys; sys.modules[{blocked!r}] = None\nimport gmsa_integrations.{package}")
    assert result.returncode != 0
    assert f"pip install 'gmsa-integrations[{extra}]'" in result.stderr


def test_metrics_without_sacrebleu_name_the_eval_extra():
    result = _run(
        "import sys; sys.modules['sacrebleu'] = None\n"
        "from gmsa_integrations.evaluation.metrics import bleu\nbleu(['a'], ['a'])"
    )
    assert "pip install 'gmsa-integrations[eval]'" in result.stderr
