"""The GMSA engine: model (encoder, group merging, LSA, decoder), compression, generation, store and checkpoints.

Everything else in the package (training, evaluation, the LangChain and LlamaIndex adapters, the command
line) is built on this package and on nothing beside it.
"""

from .budget import allocate_rates
from .compression import soft_tokens, window_size
from .config import GMSAConfig
from .engine import GMSAEngine, resolve_engine
from .errors import BackboneNotFoundError, CheckpointError
from .generation import Completion
from .merging import group_merge, num_soft_tokens
from .model import GMSAModel
from .soft_prompt import METADATA_KEYS, CompressedPassage, SoftPrompt
from .store import SoftTokenStore

__all__ = [
    "METADATA_KEYS",
    "BackboneNotFoundError",
    "CheckpointError",
    "Completion",
    "CompressedPassage",
    "GMSAConfig",
    "GMSAEngine",
    "GMSAModel",
    "SoftPrompt",
    "SoftTokenStore",
    "allocate_rates",
    "group_merge",
    "num_soft_tokens",
    "resolve_engine",
    "soft_tokens",
    "window_size",
]
