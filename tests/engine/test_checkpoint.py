import json

import pytest
import torch
from safetensors.torch import load_file

from gmsa_integrations import CheckpointError, GMSAEngine
from gmsa_integrations.cli import main as cli_main
from gmsa_integrations.testing import ARCHITECTURES
from tests.conftest import make_engine

TEXTS = ["Mira Solen was born in Kethport.", "Orvan Tools is headquartered in Dalby."]


def _override_q(engine):
    name = "model.layers.1.self_attn.q_proj.weight"
    engine.model.set_decoder_overrides({name: engine.model.backbone.get_parameter(name) * 0.5})


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_save_load_round_trip_gives_identical_soft_tokens_and_text(tmp_path, arch):
    engine = make_engine(arch)
    _override_q(engine)
    engine.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["backbone", "gmsa_config.json", "gmsa_weights.safetensors"]
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in (tmp_path / "ckpt").rglob("*"))

    loaded = GMSAEngine.from_pretrained(tmp_path / "ckpt")
    assert loaded.fingerprint == engine.fingerprint
    for a, b in zip(engine.compress(TEXTS), loaded.compress(TEXTS)):
        assert torch.equal(a.embeddings, b.embeddings)
    sps = engine.compress(TEXTS)
    assert loaded.generate("Where?", soft_prompts=sps, max_new_tokens=12) == engine.generate(
        "Where?", soft_prompts=sps, max_new_tokens=12
    )
    # the bundled backbone is the original one: plain text is served identically
    assert loaded.generate("Where?", max_new_tokens=12) == engine.generate("Where?", max_new_tokens=12)


def test_saving_twice_overwrites_cleanly(tmp_path):
    engine = make_engine()
    engine.save_pretrained(tmp_path)
    engine.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone", "gmsa_config.json", "gmsa_weights.safetensors"]


def test_corrupted_weights_are_reported_with_the_file_name(tmp_path):
    make_engine().save_pretrained(tmp_path)
    weights = tmp_path / "gmsa_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="gmsa_weights.safetensors.*checksum"):
        GMSAEngine.from_pretrained(tmp_path)
    meta = json.loads((tmp_path / "gmsa_config.json").read_text())
    meta.pop("weights_sha256")
    (tmp_path / "gmsa_config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="gmsa_weights.safetensors.*not a valid safetensors"):
        GMSAEngine.from_pretrained(tmp_path)


def test_mismatched_config_is_reported_with_the_file_name(tmp_path):
    make_engine().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "gmsa_config.json").read_text())
    meta["gmsa"]["lora_r"] = 4
    (tmp_path / "gmsa_config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="gmsa_weights.safetensors.*does not match"):
        GMSAEngine.from_pretrained(tmp_path)


def test_invalid_or_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="gmsa_config.json.*not found"):
        GMSAEngine.from_pretrained(tmp_path)
    (tmp_path / "gmsa_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="gmsa_config.json.*not valid JSON"):
        GMSAEngine.from_pretrained(tmp_path)
    (tmp_path / "gmsa_config.json").write_text(json.dumps({"format_version": 1, "gmsa": {"bogus": 1}}))
    with pytest.raises(CheckpointError, match="invalid GMSA config"):
        GMSAEngine.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="path"):
        GMSAEngine.from_pretrained(123)


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from gmsa_integrations.io import atomic_write_bytes

    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def _lora_factors(engine, rank=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    factors = {}
    for name, param in engine.model.backbone.named_parameters():
        if name.endswith(("q_proj.weight", "v_proj.weight")):
            out_features, in_features = param.shape
            factors[name] = (
                torch.randn(rank, in_features, generator=gen) * 0.1,
                torch.randn(out_features, rank, generator=gen) * 0.1,
            )
    return factors


def test_decoder_lora_is_stored_as_small_factors_and_reloads_exactly(tmp_path):
    engine = make_engine("qwen2")
    passage = ["Ada Lind was born in Varnholm."]
    original = engine.generate("Ada Lind", max_new_tokens=6)
    untuned = engine.generate("Restate:", engine.compress(passage, rate=2), max_new_tokens=6)
    engine.model.set_decoder_overrides({}, lora=_lora_factors(engine))
    tuned = engine.generate("Restate:", engine.compress(passage, rate=2), max_new_tokens=6)
    assert tuned != untuned
    engine.save_pretrained(tmp_path / "ckpt")
    state = load_file(str(tmp_path / "ckpt" / "gmsa_weights.safetensors"))
    assert not [k for k in state if k.startswith("decoder.")]  # no dense copies of the tuned weights
    assert state["decoder_lora.model.layers.0.self_attn.q_proj.weight.A"].shape[0] == 2
    again = GMSAEngine.from_pretrained(tmp_path / "ckpt")
    assert again.generate("Restate:", again.compress(passage, rate=2), max_new_tokens=6) == tuned
    assert again.generate("Ada Lind", max_new_tokens=6) == original  # plain text: the untouched backbone
    assert again.fingerprint == engine.fingerprint  # the decoder does not change soft tokens


def test_a_bf16_engine_keeps_the_decoder_lora_factors_exact_so_resaving_loses_nothing(tmp_path):
    engine = make_engine("llama")
    factors = _lora_factors(engine)
    engine.model.set_decoder_overrides({}, lora=factors)
    engine.save_pretrained(tmp_path / "fp32")
    bf16 = GMSAEngine.from_pretrained(tmp_path / "fp32", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    for name, (a, b) in factors.items():  # the dense tuned weight is bf16; the factors a stage resumes are not
        torch.testing.assert_close(bf16.model.decoder_lora()[name], (a, b), rtol=0, atol=0)
    bf16.save_pretrained(tmp_path / "again")
    first, again = (load_file(str(tmp_path / d / "gmsa_weights.safetensors")) for d in ("fp32", "again"))
    lora_keys = [k for k in first if k.startswith("decoder_lora.")]
    assert lora_keys and all(torch.equal(first[k], again[k]) for k in lora_keys)
    # `gmsa export --dtype float16` stores every tensor, factors included, in half precision
    assert cli_main(["export", "--model", str(tmp_path / "fp32"), "--out", str(tmp_path / "half")]) == 0
    half = load_file(str(tmp_path / "half" / "gmsa_weights.safetensors"))
    assert {t.dtype for t in half.values()} == {torch.float16} and set(half) == set(first)


def test_decoder_lora_of_the_wrong_shape_is_refused():
    engine = make_engine("llama")
    (name, (a, b)), *_ = _lora_factors(engine).items()
    with pytest.raises(ValueError, match="B @ A"):
        engine.model.set_decoder_overrides({}, lora={name: (a, b[:, :1])})


def test_the_trained_eos_travels_with_the_checkpoint_and_wins_over_the_tokenizers(tmp_path):
    """A checkpoint stops where it was trained to stop, whatever EOS the reloaded tokenizer declares
    (tokenizer conversions differ between library versions)."""
    engine = make_engine()
    sps = engine.compress(TEXTS[:1])
    free = engine.complete("Where?", soft_prompts=sps, max_new_tokens=6, ignore_eos=True)
    first_token = engine.tokenizer(free.text, add_special_tokens=False)["input_ids"][0]
    assert first_token != engine.tokenizer.eos_token_id
    engine.eos_token_id = first_token  # as if training had ended every target with this token
    engine.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "gmsa_config.json").read_text())["eos_token_id"] == first_token

    loaded = GMSAEngine.from_pretrained(tmp_path)
    assert loaded.eos_token_id == first_token != loaded.tokenizer.eos_token_id
    stopped = loaded.complete("Where?", soft_prompts=sps, max_new_tokens=6)
    assert (stopped.text, stopped.output_tokens, stopped.finish_reason) == ("", 0, "stop")

    meta = json.loads((tmp_path / "gmsa_config.json").read_text())
    (tmp_path / "gmsa_config.json").write_text(json.dumps({**meta, "eos_token_id": 10**9}))
    with pytest.raises(CheckpointError, match="eos_token_id"):
        GMSAEngine.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="eos_token_id"):
        GMSAEngine(engine.model, engine.tokenizer, eos_token_id="</s>")


def test_a_load_that_would_change_token_ids_is_refused_naming_both_tokenizers(tmp_path):
    engine = make_engine("qwen2")  # a Qwen2 backbone with a foreign (character-level) tokenizer
    engine.save_pretrained(tmp_path)
    recorded = json.loads((tmp_path / "gmsa_config.json").read_text())["tokenizer"]
    assert recorded["vocab_size"] == len(engine.tokenizer)
    loaded = GMSAEngine.from_pretrained(tmp_path)  # the saved tokenizer comes back: same ids, same soft tokens
    assert type(loaded.tokenizer) is type(engine.tokenizer)
    assert [sp.num_tokens for sp in loaded.compress(TEXTS)] == [sp.num_tokens for sp in engine.compress(TEXTS)]

    meta = json.loads((tmp_path / "gmsa_config.json").read_text())
    tokenizer_config = tmp_path / "backbone" / "tokenizer.json"
    vocab = json.loads(tokenizer_config.read_text())
    first, second = sorted(vocab["model"]["vocab"].items(), key=lambda kv: kv[1])[5:7]
    vocab["model"]["vocab"][first[0]], vocab["model"]["vocab"][second[0]] = second[1], first[1]  # swap two ids
    tokenizer_config.write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match=r"tokenizer.*not the one it was trained with"):
        GMSAEngine.from_pretrained(tmp_path)
    (tmp_path / "gmsa_config.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "tokenizer"}))
    GMSAEngine.from_pretrained(tmp_path)  # checkpoints from before fingerprints still load
