"""`GMSAConfig`: the hyper-parameters that define a GMSA model, kept beside the model that uses them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .prompts import AE_INSTRUCTION

DEFAULT_LORA_TARGETS: tuple[str, ...] = ()  # empty means "every nn.Linear inside the encoder layers"


@dataclass
class GMSAConfig:
    """Configuration of a GMSA compressor on top of a decoder-only backbone.

    Defaults follow the paper (GMSA_NOTES.md): an 8-layer encoder with LoRA r=128/alpha=32/dropout=0.05
    on all linear layers, and one Layer Semantic Alignment block initialised from decoder layer 0.
    """

    encoder_layers: int = 8
    """How many of the backbone's first transformer layers form the encoder."""
    lsa_layers: int = 1
    """How many of the decoder's first layers are copied into the Layer Semantic Alignment module."""
    lora_r: int = 128
    """LoRA rank of the encoder adapters."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch during training."""
    lora_target_modules: list[str] = field(default_factory=list)
    """Linear module names that get LoRA; empty means every linear layer of the encoder."""
    lsa_output_scale: Literal["embeddings", "final-norm"] = "embeddings"
    """Initial scale of the soft tokens: ``embeddings`` rescales the copied final norm so that soft tokens
    start at the norm of the backbone's input embeddings (the space they are fed into); ``final-norm``
    keeps the final norm as it is (the paper's initialisation). Final-norm outputs are at the scale of
    the LM head's inputs, e.g. 15x the input embeddings for SmolLM2, and a soft token that large dominates
    its residual stream through every decoder layer. Only the initialisation differs; training moves it."""
    default_rate: int = 4
    """Compression rate used when a call does not pass one."""
    max_window_tokens: int = 512
    """Encoder window: longer passages are split into windows of (a multiple of the rate below) this size."""
    ae_instruction: str = AE_INSTRUCTION
    """Instruction that follows the soft tokens during autoencoder pretraining."""
    paradigm: Literal["group-merging", "memory-tokens"] = "group-merging"
    """``group-merging`` (GMSA) or ``memory-tokens`` (the ICAE-style baseline, see training)."""
    memory_tokens: int = 0
    """Number of learnable memory tokens (``memory-tokens`` paradigm only)."""

    def __post_init__(self) -> None:
        for name in ("encoder_layers", "lsa_layers", "lora_r", "lora_alpha", "default_rate", "max_window_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"GMSAConfig.{name} must be an int, got {type(value).__name__}")
        if self.encoder_layers < 1:
            raise ValueError(f"GMSAConfig.encoder_layers must be >= 1, got {self.encoder_layers}")
        if self.lsa_layers < 0:
            raise ValueError(f"GMSAConfig.lsa_layers must be >= 0, got {self.lsa_layers}")
        if self.lora_r < 0:
            raise ValueError(f"GMSAConfig.lora_r must be >= 0 (0 disables LoRA), got {self.lora_r}")
        if self.default_rate < 1:
            raise ValueError(f"GMSAConfig.default_rate must be >= 1, got {self.default_rate}")
        if self.max_window_tokens < 1:
            raise ValueError(f"GMSAConfig.max_window_tokens must be >= 1, got {self.max_window_tokens}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"GMSAConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lsa_output_scale not in ("embeddings", "final-norm"):
            raise ValueError(
                f"GMSAConfig.lsa_output_scale must be 'embeddings' or 'final-norm', got {self.lsa_output_scale!r}"
            )
        if self.paradigm not in ("group-merging", "memory-tokens"):
            raise ValueError(f"GMSAConfig.paradigm must be 'group-merging' or 'memory-tokens', got {self.paradigm!r}")
        self.lora_target_modules = list(self.lora_target_modules)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GMSAConfig:
        if not isinstance(data, dict):
            raise TypeError(f"GMSAConfig.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GMSAConfig keys: {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
