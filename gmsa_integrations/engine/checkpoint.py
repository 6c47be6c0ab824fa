"""GMSA checkpoints: safetensors weights + a JSON config, written atomically, read with clear errors.

Layout of a GMSA checkpoint directory::

    gmsa_config.json            # format version, GMSAConfig, backbone reference, EOS, tokenizer fingerprint,
                                # sha256 of the weights
    gmsa_weights.safetensors    # encoder LoRA, LSA, KEFT decoder overrides (``decoder.*``)
    backbone/                   # optional: the backbone + tokenizer, when bundled

The JSON is written last and names the weights' sha256, so a torn write is detected at load time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Literal

import torch

from ..io import atomic_write_bytes, atomic_write_json, read_json, replace_directory
from .config import GMSAConfig
from .errors import CheckpointError
from .loading import BackboneRef, check_tokenizer, load_backbone, tokenizer_fingerprint
from .model import GMSAModel

CONFIG_NAME = "gmsa_config.json"
WEIGHTS_NAME = "gmsa_weights.safetensors"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 1


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> str:
    """Atomically write a safetensors file; returns its sha256."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle), checking its sha256 when one is recorded."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(f"{path}: checksum mismatch (the file is corrupted or from another save)")
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """``gmsa_config.json`` of a checkpoint, as a dict; `CheckpointError` names what is wrong with it."""
    path = Path(directory) / CONFIG_NAME
    try:
        meta = read_json(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found (not a GMSA checkpoint?)") from None
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unsupported format_version {meta.get('format_version')!r} (this version reads {FORMAT_VERSION})"
        )
    return meta


def tensors_digest(digest: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Feed ``tensors`` (names, dtypes, bytes; in name order) into a hashlib ``digest``."""
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())


def compressor_fingerprint(model: GMSAModel) -> str:
    """sha256 of everything that determines soft tokens: config, encoder source layers, encoder LoRA and LSA
    (not the decoder, which KEFT tunes after indexing)."""
    digest = hashlib.sha256(model.config.to_json().encode())
    tensors_digest(digest, model.encoder_source_tensors())
    own = {k: v for k, v in model.gmsa_state_dict().items() if not k.startswith(("decoder.", "decoder_lora."))}
    tensors_digest(digest, own)
    return digest.hexdigest()


def load_checkpoint(
    directory: str | os.PathLike, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> tuple[GMSAModel, Any, dict[str, Any]]:
    """``(model with its trained weights, tokenizer, gmsa_config.json)`` of a checkpoint directory."""
    directory = Path(directory)
    where = directory / CONFIG_NAME
    meta = read_config(directory)
    try:
        config = GMSAConfig.from_dict(meta["gmsa"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid GMSA config ({exc})") from None
    ref = meta.get("backbone")
    if not isinstance(ref, (str, dict)):
        raise CheckpointError(f"{where}: missing backbone reference")
    backbone, tokenizer, _ = load_backbone(str(directory / BACKBONE_DIR) if ref == "bundled" else ref, dtype)
    if device is not None:
        backbone.to(device)
    check_tokenizer(tokenizer, meta.get("tokenizer"), str(where))
    eos = meta.get("eos_token_id")
    if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int) or not 0 <= eos < len(tokenizer)):
        raise CheckpointError(f"{where}: eos_token_id {eos!r} is not a token id")
    model = GMSAModel(backbone, config)
    weights = directory / WEIGHTS_NAME
    try:
        model.load_gmsa_state_dict(load_tensors(weights, meta.get("weights_sha256")))
    except (KeyError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{weights}: does not match the model in {where}: {exc}") from None
    return model, tokenizer, meta


def _build_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def save_checkpoint(
    directory: str | os.PathLike,
    model: GMSAModel,
    tokenizer: Any,
    *,
    backbone_ref: BackboneRef | None,
    eos_token_id: int | None,
    bundle_backbone: bool,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint that `load_checkpoint` reads: weights (cast to ``dtype`` if given, else each as held),
    then the config that names their sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if bundle_backbone:
        build = _build_dir(directory / BACKBONE_DIR)
        with model.original_decoder():
            model.backbone.save_pretrained(build)
        tokenizer.save_pretrained(build)
        replace_directory(build, directory / BACKBONE_DIR)
    state = model.gmsa_state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    sha = save_tensors(directory / WEIGHTS_NAME, state, {"format": "pt"})
    atomic_write_json(
        directory / CONFIG_NAME,
        {
            "format_version": FORMAT_VERSION,
            "gmsa": model.config.to_dict(),
            "backbone": "bundled" if bundle_backbone else backbone_ref,
            "eos_token_id": eos_token_id,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "weights_sha256": sha,
        },
    )
    if not bundle_backbone and (directory / BACKBONE_DIR).is_dir():
        # an earlier save's bundled backbone; removed only once the new config no longer points to it
        shutil.rmtree(directory / BACKBONE_DIR)
    return directory


def export_decoder(
    directory: str | os.PathLike,
    model: GMSAModel,
    tokenizer: Any,
    *,
    stop_token_ids: set[int],
    decoder: Literal["keft", "original"] = "keft",
) -> Path:
    """Write the decoder as a plain Hugging Face checkpoint: safetensors with the tuned weights merged, the
    tokenizer, and a generation config that stops at ``stop_token_ids``."""
    if decoder not in ("keft", "original"):
        raise ValueError(f"decoder must be 'keft' or 'original', got {decoder!r}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    build = _build_dir(directory)
    backbone = model.backbone
    with contextlib.ExitStack() as stack:
        if decoder == "original":
            stack.enter_context(model.original_decoder())
        previous_eos = backbone.generation_config.eos_token_id
        backbone.generation_config.eos_token_id = sorted(stop_token_ids) or None
        try:
            backbone.save_pretrained(build, safe_serialization=True)
        finally:
            backbone.generation_config.eos_token_id = previous_eos
    tokenizer.save_pretrained(build)
    replace_directory(build, directory)
    return directory
