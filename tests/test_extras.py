"""Installation extras: the engine and training import without either framework; a missing framework is an
ImportError that names the extra to install."""

import subprocess
import sys

FRAMEWORKS = ["langchain_core", "llama_index", "faiss", "sentence_transformers", "sacrebleu", "matplotlib"]

# one interpreter for every case: each blocks a dependency, imports what needs it and reports the error text
PROBE = f"""
import sys
import gmsa_integrations, gmsa_integrations.engine, gmsa_integrations.training
print("loaded:", [m for m in {FRAMEWORKS!r} if m in sys.modules])
cases = [("langchain_core", "gmsa_integrations.langchain"), ("llama_index", "gmsa_integrations.llama_index"),
         ("sacrebleu", "gmsa_integrations.evaluation.metrics")]
for blocked, module in cases:
    saved = {{k: v for k, v in sys.modules.items() if k == blocked or k.startswith(blocked + ".")}}
    sys.modules[blocked] = None
    try:
        imported = __import__(module, fromlist=["_"])
        if module.endswith("metrics"):
            imported.bleu(["a"], ["a"])
        print(module, "-> no error")
    except ImportError as exc:
        print(module, "->", exc)
    finally:
        sys.modules.pop(blocked)
        sys.modules.update(saved)
"""


def test_engine_and_training_need_no_framework_and_a_missing_one_names_its_extra():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "loaded: []"
    assert "pip install 'gmsa-integrations[langchain]'" in lines[1]
    assert "pip install 'gmsa-integrations[llama-index]'" in lines[2]
    assert "pip install 'gmsa-integrations[eval]'" in lines[3]
