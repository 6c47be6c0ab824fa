"""Optional dependencies: ``pip install gmsa-integrations`` installs the engine and training only; each extra
adds the rest, and a missing one is an ImportError that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {
    "langchain": "the LangChain integration (gmsa_integrations.langchain)",
    "llama-index": "the LlamaIndex integration (gmsa_integrations.llama_index)",
    "eval": "evaluation metrics and plots (sacrebleu, matplotlib)",
    "all": "both integrations, evaluation and the demo",
}


def require(module: str, extra: str) -> ModuleType:
    """``import module``, or an ImportError that says ``pip install 'gmsa-integrations[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{EXTRAS[extra]} needs {module.split('.')[0]!r}, which is not installed; "
            f"install it with: pip install 'gmsa-integrations[{extra}]'"
        ) from exc
