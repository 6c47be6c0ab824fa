import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from gmsa_integrations import GMSAConfig, GMSAEngine
from gmsa_integrations.cli import main as cli_main
from gmsa_integrations.testing import ARCHITECTURES, char_tokenizer, random_backbone
from gmsa_integrations.training import DataError, TrainConfig, read_rows, select_trainable, train

FACTS = [
    "Mira Solen was born in Kethport.",
    "Orvan Tools is based in Dalby.",
    "The river Anwe flows north.",
    "Tamsin Reil founded Orvan Tools.",
]
QA = [
    {"question": "Where was Mira born?", "answers": ["Kethport"], "passages": [FACTS[0], FACTS[2]]},
    {"question": "Where is Orvan Tools?", "answers": ["Dalby"], "context": FACTS[1]},
    {"question": "Who founded Orvan Tools?", "answers": ["Tamsin Reil"], "passages": [FACTS[3]]},
]
SMALL_GMSA = GMSAConfig(encoder_layers=2, lora_r=8, lora_alpha=16, max_window_tokens=64)
SMALL = dict(logging_steps=5, show_progress=False, gmsa=SMALL_GMSA)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _ae_config(workdir, out, **overrides) -> TrainConfig:
    """Stage ``ae`` on the module's random backbone and restatement rows; a test overrides what it varies."""
    fields = dict(
        stage="ae",
        backbone=str(workdir / "backbone"),
        data=str(workdir / "ae.jsonl"),
        output_dir=str(out),
        batch_size=4,
        learning_rate=5e-3,
        save_steps=100,
        **SMALL,
    )
    return TrainConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    backbone = random_backbone("llama", layers=4, hidden=64, heads=4, kv_heads=2)
    backbone.save_pretrained(root / "backbone")
    char_tokenizer().save_pretrained(root / "backbone")
    _write_jsonl(root / "ae.jsonl", [{"text": t, "id": i} for i, t in enumerate(FACTS * 4)])
    _write_jsonl(root / "qa.jsonl", QA * 4)
    return root


@pytest.fixture(scope="module")
def ae_checkpoint(workdir):
    train(_ae_config(workdir, workdir / "ae", max_steps=40, save_steps=20))
    return workdir / "ae"


def _losses(log_file):
    return [json.loads(line)["loss"] for line in (log_file).read_text().splitlines()]


def test_autoencoder_loss_falls_and_log_has_step_loss_lr(ae_checkpoint):
    records = [json.loads(line) for line in (ae_checkpoint / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all({"step", "loss", "learning_rate", "time"} <= set(r) for r in records)
    times = [r["time"] for r in records]  # Unix times, from which the model card's step times follow
    assert times == sorted(times) and abs(times[-1] - time.time()) < 3600
    losses = _losses(ae_checkpoint / "log.jsonl")
    assert losses[-1] < losses[0]


def test_autoencoder_trains_exactly_lora_and_lsa(workdir, ae_checkpoint):
    initial = GMSAEngine.from_backbone(str(workdir / "backbone"), config=_gmsa_config())
    trained = GMSAEngine.from_pretrained(ae_checkpoint)
    before, after = initial.model.state_dict(), trained.model.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("lsa.") or "lora_B" in k or "lora_A" in k for k in changed)
    assert any(k.startswith("lsa.") for k in changed) and any("lora_B" in k for k in changed)
    assert not any(k.startswith("backbone.") for k in changed)


def test_autoencoder_can_also_tune_the_decoder_as_overrides(workdir):
    out = workdir / "ae_qkv"
    train(_ae_config(workdir, out, max_steps=3, ae_decoder="qkv"))
    engine = GMSAEngine.from_pretrained(out)
    names = set(engine.model.decoder_overrides())
    assert names and all(n.rsplit(".", 2)[-2] in ("q_proj", "k_proj", "v_proj") for n in names)
    original = GMSAEngine.from_backbone(str(workdir / "backbone"), config=_gmsa_config()).model.backbone
    with engine.model.original_decoder():
        for name, param in original.named_parameters():
            assert torch.equal(param, engine.model.backbone.get_parameter(name)), name
    with pytest.raises(ValueError, match="ae_decoder"):
        TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", ae_decoder="everything")


def _gmsa_config():
    from gmsa_integrations import GMSAConfig

    return GMSAConfig(encoder_layers=2, lora_r=8, lora_alpha=16, default_rate=4, max_window_tokens=64)


@pytest.mark.parametrize("mode", ["qkv", "full", "lora"])
def test_keft_trains_only_the_decoder_and_keeps_soft_tokens(workdir, ae_checkpoint, mode):
    out = workdir / f"keft-{mode}"
    config = TrainConfig(
        stage="keft",
        init=str(ae_checkpoint),
        data=str(workdir / "qa.jsonl"),
        output_dir=str(out),
        max_steps=30,
        batch_size=3,
        learning_rate=3e-3,
        keft_mode=mode,
        save_steps=100,
        **SMALL,
    )
    train(config)
    losses = _losses(out / "log.jsonl")
    assert losses[-1] < losses[0]
    ae, keft = GMSAEngine.from_pretrained(ae_checkpoint), GMSAEngine.from_pretrained(out)
    assert keft.fingerprint == ae.fingerprint
    for a, b in zip(ae.compress(FACTS), keft.compress(FACTS)):
        assert torch.equal(a.embeddings, b.embeddings)
    tuned = keft.model.decoder_overrides()
    assert tuned
    if mode == "qkv":
        assert all(n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")) for n in tuned)
        assert len(tuned) == 3 * 4
    elif mode == "lora":  # the decoder LoRA sits on Q/K/V/O and is stored as factors
        assert all(n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")) for n in tuned)
        assert len(tuned) == 4 * 4 and set(keft.model.decoder_lora()) == set(tuned)
    else:
        assert "model.embed_tokens.weight" not in tuned and "lm_head.weight" in tuned
    for name, tensor in tuned.items():
        assert not torch.equal(tensor, ae.model.backbone.get_parameter(name)), name
    # plain text is served by the decoder as it was before KEFT
    assert keft.generate("Hi", max_new_tokens=8) == ae.generate("Hi", max_new_tokens=8)


def test_resume_continues_from_the_saved_step(workdir, ae_checkpoint):
    assert (ae_checkpoint / "checkpoint-20").is_dir()
    resumed = workdir / "resumed"
    import shutil

    shutil.copytree(ae_checkpoint / "checkpoint-20", resumed / "checkpoint-20")
    # the interrupted run's log: steps after its last checkpoint (25) are redone, so they are dropped
    _write_jsonl(resumed / "log.jsonl", [{"step": s, "loss": 1.0} for s in (5, 10, 15, 20, 25)])
    train(_ae_config(workdir, resumed, max_steps=30, resume=True))
    steps = [json.loads(line)["step"] for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


def test_lsa_learning_rate_sets_the_lsa_apart_from_the_encoder_lora(workdir):
    # fp32 on every machine: in bf16 the LSA starts as a rounded copy of the bf16 backbone's layer
    config = _ae_config(workdir, workdir / "lsa_lr", max_steps=3, lsa_learning_rate=0.0, bf16=False)
    trained = train(config).model.state_dict()
    initial = GMSAEngine.from_backbone(str(workdir / "backbone"), config=_gmsa_config()).model.state_dict()
    lsa = [k for k in initial if k.startswith("lsa.")]
    assert lsa and all(torch.equal(initial[k], trained[k]) for k in lsa)
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if "lora_B" in k)


def test_memory_tokens_baseline_trains_and_loads(workdir):
    icae = dataclasses.replace(SMALL_GMSA, paradigm="memory-tokens")
    train(_ae_config(workdir, workdir / "icae", max_steps=5, gmsa=icae))
    engine = GMSAEngine.from_pretrained(workdir / "icae")
    sp = engine.compress([FACTS[0]], rate=4)[0]
    assert engine.config.paradigm == "memory-tokens"
    assert sp.num_tokens == -(-sp.source_tokens // 4)


def test_cli_and_yaml_config(workdir, tmp_path):
    yaml_file = tmp_path / "ae.yaml"
    yaml_file.write_text(
        f"backbone: {workdir / 'backbone'}\ndata: {workdir / 'ae.jsonl'}\nencoder-layers: 2\nlora_r: 4\n"
        "max_steps: 3\nrates: [4]\nshow_progress: false\n"
    )
    assert cli_main(["train", "ae", "--config", str(yaml_file), "--output-dir", str(tmp_path / "out")]) == 0
    engine = GMSAEngine.from_pretrained(tmp_path / "out")
    assert engine.config.lora_r == 4 and engine.config.encoder_layers == 2


def test_two_process_torchrun_on_cpu(workdir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "gmsa_integrations",
        "train",
        "ae",
        "--backbone",
        str(workdir / "backbone"),
        "--data",
        str(workdir / "ae.jsonl"),
        "--output-dir",
        str(out),
        "--max-steps",
        "4",
        "--batch-size",
        "2",
        "--encoder-layers",
        "2",
        "--lora-r",
        "4",
        "--logging-steps",
        "2",
        "--no-show-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    keft = [
        *cmd[:7],
        "train",
        "keft",
        "--init",
        str(out),
        "--data",
        str(workdir / "qa.jsonl"),
        "--output-dir",
        str(tmp_path / "ddp-keft"),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--dataloader-workers",
        "1",
        "--no-show-progress",
    ]
    result = subprocess.run(keft, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert GMSAEngine.from_pretrained(tmp_path / "ddp-keft").model.has_decoder_overrides
    engine = GMSAEngine.from_pretrained(out)
    assert engine.compress([FACTS[0]])[0].num_tokens > 0
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [2, 4]


# ------------------------------------------------------------------------------------------ bad data
def test_malformed_lines_are_errors_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        read_rows(bad, "ae")
    bad.write_text('{"text": "ok"}\n\n{"txt": "typo"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: missing field 'text'"):
        read_rows(bad, "ae")
    bad.write_text('{"question": "q", "answers": ["a"]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field 'passages'"):
        read_rows(bad, "qa")
    bad.write_text('{"question": "q", "answers": "a", "context": "c"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'answers'"):
        read_rows(bad, "qa")
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "missing.jsonl", "ae")


def test_datasets_directory_is_accepted(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([QA[0], QA[2]]).save_to_disk(str(tmp_path / "ds"))
    rows = read_rows(tmp_path / "ds", "qa")
    assert [r.answers for r in rows] == [("Kethport",), ("Tamsin Reil",)]


def test_bad_train_config_is_a_clear_error():
    with pytest.raises(ValueError, match="init"):
        TrainConfig(stage="keft", data="x", output_dir="y")
    with pytest.raises(ValueError, match="rates"):
        TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", rates="4,x")
    with pytest.raises(ValueError, match="keft_mode"):
        TrainConfig(stage="keft", init="i", data="x", output_dir="y", keft_mode="bogus")
    with pytest.raises(ValueError, match="lsa_learning_rate"):
        TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", lsa_learning_rate=-1e-4)
    with pytest.raises(ValueError, match="lsa_learning_rate applies to stage ae"):
        TrainConfig(stage="keft", init="i", data="x", output_dir="y", lsa_learning_rate=1e-4)
    with pytest.raises(ValueError, match="loss_per"):
        TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", loss_per="row")


def test_lsa_learning_rate_without_an_lsa_is_refused(workdir, tmp_path):
    icae = dataclasses.replace(SMALL_GMSA, paradigm="memory-tokens")
    config = _ae_config(workdir, tmp_path / "icae", max_steps=1, lsa_learning_rate=1e-4, gmsa=icae)
    with pytest.raises(ValueError, match="needs an LSA block"):
        train(config)


@pytest.mark.parametrize(("stage", "mode"), [("ae", "frozen"), ("ae", "lora"), ("keft", "qkv"), ("keft", "lora")])
def test_a_bf16_engine_trains_fp32_weights(workdir, stage, mode):
    engine = GMSAEngine.from_backbone(str(workdir / "backbone"), config=_gmsa_config(), dtype=torch.bfloat16)
    names = select_trainable(engine, stage, keft_mode=mode if stage == "keft" else "qkv", lora_r=4, ae_decoder=mode)
    params = dict(engine.model.named_parameters())
    assert names and {params[n].dtype for n in names} == {torch.float32}  # optimizer updates in fp32
    assert params["backbone.model.embed_tokens.weight"].dtype == torch.bfloat16  # the frozen backbone stays bf16


def test_keft_in_bf16_keeps_the_compressor_and_the_soft_tokens_indexed_before_it(workdir, ae_checkpoint, tmp_path):
    out = tmp_path / "keft-bf16"
    config = TrainConfig(
        stage="keft",
        init=str(ae_checkpoint),
        data=str(workdir / "qa.jsonl"),
        output_dir=str(out),
        max_steps=3,
        batch_size=3,
        keft_mode="lora",
        keft_lora_r=4,
        bf16=True,
        **SMALL,
    )
    train(config)
    ae, keft = GMSAEngine.from_pretrained(ae_checkpoint), GMSAEngine.from_pretrained(out)
    assert keft.fingerprint == ae.fingerprint
    for a, b in zip(ae.compress(FACTS), keft.compress(FACTS)):
        assert torch.equal(a.embeddings, b.embeddings)


def test_keft_lora_resumes_from_its_adapters(workdir, ae_checkpoint, tmp_path):
    common = dict(
        stage="keft",
        init=str(ae_checkpoint),
        data=str(workdir / "qa.jsonl"),
        batch_size=3,
        learning_rate=3e-3,
        keft_mode="lora",
        keft_lora_r=4,
        **SMALL,
    )
    train(TrainConfig(output_dir=str(tmp_path / "a"), max_steps=10, save_steps=5, **common))
    assert (tmp_path / "a" / "checkpoint-5" / "keft_lora.safetensors").is_file()
    resumed = tmp_path / "b"
    import shutil

    shutil.copytree(tmp_path / "a" / "checkpoint-5", resumed / "checkpoint-5")
    train(TrainConfig(output_dir=str(resumed), max_steps=10, save_steps=100, resume=True, **common))
    steps = [json.loads(line)["step"] for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == [10]
    a, b = GMSAEngine.from_pretrained(tmp_path / "a"), GMSAEngine.from_pretrained(resumed)
    for name, tensor in a.model.decoder_overrides().items():
        torch.testing.assert_close(tensor, b.model.decoder_overrides()[name])


def test_autoencoder_with_decoder_lora_on_mixed_rows_stores_factors_that_init_continues(workdir, tmp_path):
    common = dict(
        stage="ae",
        data=f"{workdir / 'ae.jsonl'},{workdir / 'qa.jsonl'}",  # restatement and QA rows, one stage
        batch_size=4,
        learning_rate=5e-3,
        ae_decoder="lora",
        keft_lora_r=4,
        save_steps=100,
        **SMALL,
    )
    train(TrainConfig(backbone=str(workdir / "backbone"), output_dir=str(tmp_path / "a"), max_steps=10, **common))
    first = GMSAEngine.from_pretrained(tmp_path / "a")
    factors = first.model.decoder_lora()
    assert len(factors) == 4 * 4 and all(a.shape[0] == 4 for a, _ in factors.values())
    weights = load_file(str(tmp_path / "a" / "gmsa_weights.safetensors"))
    assert not [k for k in weights if k.startswith("decoder.")]  # factors only, no dense copies
    # continuing from the checkpoint trains the same factors further (same rank), not a second stacked LoRA
    train(TrainConfig(init=str(tmp_path / "a"), output_dir=str(tmp_path / "b"), max_steps=3, **common))
    second = GMSAEngine.from_pretrained(tmp_path / "b").model.decoder_lora()
    assert set(second) == set(factors) and all(second[n][0].shape[0] == 4 for n in second)
    assert any(not torch.equal(second[n][1], factors[n][1]) for n in factors)


def test_baseline_stage_tunes_the_decoder_on_full_text_only(workdir, tmp_path):
    out = tmp_path / "baseline"
    config = TrainConfig(
        stage="baseline",
        backbone=str(workdir / "backbone"),
        data=str(workdir / "qa.jsonl"),
        output_dir=str(out),
        max_steps=20,
        batch_size=3,
        learning_rate=3e-3,
        keft_mode="lora",
        keft_lora_r=4,
        save_steps=100,
        **SMALL,
    )
    train(config)
    losses = _losses(out / "log.jsonl")
    assert losses[-1] < losses[0]
    engine = GMSAEngine.from_pretrained(out)
    assert engine.config.lora_r == 0 and engine.config.lsa_layers == 0  # no compressor to ship
    assert len(engine.model.decoder_lora()) == 4 * 4
    prompt = f"{FACTS[0]}\nQuestion: Where was Mira born?\nAnswer:"
    assert engine.generate(prompt, decoder="keft", max_new_tokens=8) != engine.generate(prompt, max_new_tokens=8)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_one_autoencoder_step_then_one_keft_step(tmp_path, arch):
    backbone = random_backbone(arch, layers=2, hidden=32, heads=2)
    backbone.save_pretrained(tmp_path / arch)
    char_tokenizer().save_pretrained(tmp_path / arch)
    ae_data = _write_jsonl(tmp_path / "ae.jsonl", [{"text": t} for t in FACTS])
    qa_data = _write_jsonl(tmp_path / "qa.jsonl", QA)
    common = dict(max_steps=1, batch_size=2, save_steps=100, **{**SMALL, "logging_steps": 1})
    small = dataclasses.replace(SMALL_GMSA, encoder_layers=1)
    train(
        TrainConfig(
            stage="ae",
            backbone=str(tmp_path / arch),
            data=ae_data,
            output_dir=str(tmp_path / "ae"),
            **{**common, "gmsa": small},
        )
    )
    train(
        TrainConfig(
            stage="keft",
            init=str(tmp_path / "ae"),
            data=qa_data,
            output_dir=str(tmp_path / "keft"),
            keft_mode="lora",
            keft_lora_r=4,
            **common,
        )
    )
    engine = GMSAEngine.from_pretrained(tmp_path / "keft")
    assert engine.model.backbone.config.model_type == arch
    assert engine.model.has_decoder_overrides
    assert engine.compress([FACTS[0]], rate=4)[0].num_tokens == -(-len(FACTS[0]) // 4)


def test_bf16_defaults_follow_the_hardware_and_an_explicit_choice_wins(monkeypatch):
    from gmsa_integrations.training.trainer import _use_bf16

    config = TrainConfig(stage="ae", backbone="b", data="x", output_dir="y")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert _use_bf16(config) is True  # native bf16 CPU: on by default
    assert _use_bf16(TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", bf16=False)) is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert _use_bf16(config) is False  # emulated bf16 would be slower: fp32
    assert _use_bf16(TrainConfig(stage="ae", backbone="b", data="x", output_dir="y", bf16=True)) is True
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert _use_bf16(config) is False  # a torch without the probes: fp32, no error
