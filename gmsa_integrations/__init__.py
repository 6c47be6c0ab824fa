"""GMSA context compression for LangChain and LlamaIndex.

The core is `GMSAEngine` (compress passages into soft tokens, generate from them); training,
evaluation and the framework adapters are built on it.
"""

from .engine import CheckpointError, Completion, GMSAConfig, GMSAEngine, SoftPrompt, SoftTokenStore

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Completion", "GMSAConfig", "GMSAEngine", "SoftPrompt", "SoftTokenStore", "__version__"]
