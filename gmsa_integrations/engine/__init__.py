"""The GMSA engine: model (encoder, group merging, LSA, decoder), generation and checkpoints."""

from .budget import allocate_rates
from .checkpoint import CheckpointError
from .config import GMSAConfig
from .engine import Completion, GMSAEngine, resolve_engine
from .merging import group_merge, num_soft_tokens
from .model import GMSAModel
from .soft_prompt import SoftPrompt
from .store import SoftTokenStore

__all__ = [
    "CheckpointError",
    "Completion",
    "GMSAConfig",
    "GMSAEngine",
    "GMSAModel",
    "SoftPrompt",
    "SoftTokenStore",
    "allocate_rates",
    "group_merge",
    "num_soft_tokens",
    "resolve_engine",
]
