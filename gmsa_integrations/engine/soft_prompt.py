"""`SoftPrompt`: the soft tokens of one passage, as produced by `GMSAEngine.compress`."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SoftPrompt:
    """Soft tokens that stand for one passage in the decoder's ``inputs_embeds``.

    Attributes:
        embeddings: ``[ceil(source_tokens / rate), hidden]`` tensor, on the engine's device and dtype.
        source_tokens: number of context tokens L the passage had (``tokenizer(text, add_special_tokens=False)``).
        rate: compression rate r used.
        fingerprint: identity of the engine that made it; another engine refuses it.
        key: sha256 of (fingerprint, rate, text): the passage's identity in a `SoftTokenStore` and in
            soft-token references.
    """

    embeddings: torch.Tensor
    source_tokens: int
    rate: int
    fingerprint: str = ""
    key: str = ""

    @property
    def num_tokens(self) -> int:
        """Number of soft tokens (``ceil(source_tokens / rate)``)."""
        return int(self.embeddings.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.embeddings.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SoftPrompt:
        """The same soft prompt with its embeddings on ``device`` / in ``dtype``."""
        moved = self.embeddings.to(device=device, dtype=dtype)
        if moved is self.embeddings:
            return self
        return SoftPrompt(moved, self.source_tokens, self.rate, self.fingerprint, self.key)

    def __repr__(self) -> str:
        return (
            f"SoftPrompt(num_tokens={self.num_tokens}, source_tokens={self.source_tokens}, rate={self.rate}, "
            f"dtype={self.embeddings.dtype}, fingerprint={self.fingerprint[:12]!r})"
        )


@dataclass(frozen=True)
class CompressedPassage:
    """One passage as the framework adapters hand it on: a reference that replaces its text in the prompt,
    and the metadata a document or node keeps beside it (`GMSAEngine.compress_passages` makes these)."""

    text: str
    """The original passage."""
    soft_prompt: SoftPrompt
    reference: str
    """``<gmsa:...>``: stands for ``soft_prompt`` in any text given to the engine that made it."""

    @property
    def metadata(self) -> dict[str, int | str]:
        """``gmsa_source_tokens``, ``gmsa_soft_tokens``, ``gmsa_rate`` and ``gmsa_original_text``."""
        return {
            "gmsa_source_tokens": self.soft_prompt.source_tokens,
            "gmsa_soft_tokens": self.soft_prompt.num_tokens,
            "gmsa_rate": self.soft_prompt.rate,
            "gmsa_original_text": self.text,
        }


METADATA_KEYS = ("gmsa_source_tokens", "gmsa_soft_tokens", "gmsa_rate", "gmsa_original_text")
"""The keys of `CompressedPassage.metadata`."""
