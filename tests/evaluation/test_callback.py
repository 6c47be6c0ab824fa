"""Held-out reconstruction and QA in the training log, every N steps, without disturbing training."""

import json
import math

import pytest

from gmsa_integrations.data.records import AERow, QARow
from gmsa_integrations.engine import GMSAConfig
from gmsa_integrations.evaluation.callback import ValidationCallback
from gmsa_integrations.evaluation.harness import evaluate_reconstruction, plot_training_log, read_training_log
from gmsa_integrations.testing import char_tokenizer, random_backbone
from gmsa_integrations.training import TrainConfig, train

TEXTS = ["Mira Solen was born in Kethport.", "Orvan Tools is based in Dalby."]


def _config(tmp_path, output):
    backbone = random_backbone("llama", layers=2, hidden=32, heads=2)
    backbone.save_pretrained(tmp_path / "backbone")
    char_tokenizer().save_pretrained(tmp_path / "backbone")
    (tmp_path / "ae.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS * 4))
    return TrainConfig(
        stage="ae",
        backbone=str(tmp_path / "backbone"),
        data=str(tmp_path / "ae.jsonl"),
        output_dir=str(tmp_path / output),
        max_steps=6,
        batch_size=2,
        learning_rate=1e-3,
        gmsa=GMSAConfig(encoder_layers=1, lora_r=4, lora_alpha=8, max_window_tokens=32),
        logging_steps=3,
        save_steps=100,
        show_progress=False,
        seed=0,
    )


def test_validation_records_join_the_loss_records_and_leave_training_unchanged(tmp_path):
    ae = [AERow(t) for t in TEXTS]
    qa = [QARow("Where was Mira born?", ("Kethport",), (TEXTS[0],))]
    config = _config(tmp_path, "with")
    train(config, callbacks=[lambda engine: ValidationCallback(engine, ae, qa, every=3, rate=4)])
    records = [json.loads(line) for line in (tmp_path / "with" / "log.jsonl").read_text().splitlines()]
    validation = [r for r in records if "val_bleu_4x" in r]
    assert [r["step"] for r in validation] == [0, 3, 6]  # step 0: the initial weights, the curves' start
    assert all(0 <= r["val_bleu_4x"] <= 1 and r["val_em_4x"] in (0.0, 1.0) for r in validation)
    assert all(r["val_nll_4x"] > 0 and math.isfinite(r["val_nll_gain_4x"]) for r in validation)
    # measuring merges the encoder LoRA for speed; training must go on exactly as without the callback
    train(_config(tmp_path, "without"))
    plain = [json.loads(line) for line in (tmp_path / "without" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records if "loss" in r] == pytest.approx([r["loss"] for r in plain], rel=1e-5)

    series = plot_training_log(str(tmp_path / "with" / "log.jsonl"), str(tmp_path / "curves.png"))
    assert [s for s, _ in series["val_em_4x"]] == [0, 3, 6] == [s for s, _ in series["val_nll_4x"]]
    assert (tmp_path / "curves.png").stat().st_size > 1000

    # two runs overlaid in one figure, each series under its run's label
    runs = {"gm": str(tmp_path / "with" / "log.jsonl"), "plain": str(tmp_path / "without" / "log.jsonl")}
    overlaid = plot_training_log(runs, str(tmp_path / "both.png"))
    assert (
        overlaid["gm: val_nll_4x"] == series["val_nll_4x"]
        and overlaid["gm: loss"] == series["loss"]
        and "plain: loss" in overlaid
    )
    assert "plain: val_nll_4x" not in overlaid and (tmp_path / "both.png").stat().st_size > 1000


def test_a_resumed_run_does_not_measure_its_start_again(tmp_path, monkeypatch):
    from types import SimpleNamespace

    callback = ValidationCallback(None, [AERow("x")], [], every=5)
    monkeypatch.setattr(callback, "measure", lambda: {"val_nll_4x": 1.0})
    args = SimpleNamespace(output_dir=str(tmp_path))
    callback.on_train_begin(args, SimpleNamespace(is_world_process_zero=True, global_step=50), None)
    assert not (tmp_path / "log.jsonl").exists()
    callback.on_train_begin(args, SimpleNamespace(is_world_process_zero=True, global_step=0), None)
    assert [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [
        {"step": 0, "val_nll_4x": 1.0}
    ]


def test_validation_measures_passages_cut_as_training_cuts_them():
    from tests.conftest import make_engine

    engine = make_engine("llama")
    rows = [AERow(t) for t in TEXTS]
    cut = ValidationCallback(engine, rows, [], every=1, max_length=8).measure()
    (expected,) = evaluate_reconstruction(engine, rows, [4], max_length=8)
    assert cut == pytest.approx({f"val_{k}_4x": expected.values[k] for k in ("bleu", "nll", "nll_gain")})
    whole = ValidationCallback(engine, rows, [], every=1).measure()
    assert whole["val_nll_4x"] != pytest.approx(cut["val_nll_4x"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="every"):
        ValidationCallback(None, [AERow("x")], [], every=0)
    with pytest.raises(ValueError, match="rows"):
        ValidationCallback(None, [], [], every=5)


def test_a_log_without_losses_is_refused(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 1, "val_em_4x": 0.5}\n')
    with pytest.raises(ValueError, match="no loss"):
        read_training_log(str(tmp_path / "log.jsonl"))


def test_cli_overlays_labelled_runs_and_refuses_duplicate_labels(tmp_path, capsys):
    from gmsa_integrations.cli import main

    for run, loss in (("gm", 2.0), ("icae", 3.0)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "log.jsonl").write_text(
            f'{{"step": 10, "loss": {loss}}}\n{{"step": 10, "val_nll_4x": 1.5}}\n'
        )
    logs = ["--log", f"gm={tmp_path}/gm/log.jsonl", "--log", f"icae={tmp_path}/icae/log.jsonl"]
    assert main(["eval", "curves", *logs, "--plot", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "gm: loss: 1 points, last 2.0000" in printed and "icae: val_nll_4x" in printed
    with pytest.raises(SystemExit, match="label"):
        main(
            ["eval", "curves", "--log", f"{tmp_path}/gm/log.jsonl", "--log", f"{tmp_path}/gm/log.jsonl", "--plot", "x"]
        )
