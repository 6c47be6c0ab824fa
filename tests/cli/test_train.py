"""``gmsa train``: flags generated from the dataclasses, YAML with the same names, flags over YAML."""

import dataclasses
import json

import pytest

from gmsa_integrations.cli import build_parser
from gmsa_integrations.cli.args import given_options
from gmsa_integrations.engine import GMSAConfig
from gmsa_integrations.training import TrainConfig


def _parse(*argv):
    return build_parser().parse_args(["train", "ae", *argv])


def test_every_config_field_has_a_flag():
    parser_actions = build_parser()._subparsers._group_actions[0].choices["train"]
    stage_parser = parser_actions._subparsers._group_actions[0].choices["keft"]
    dests = {action.dest for action in stage_parser._actions}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} | {f.name for f in dataclasses.fields(GMSAConfig)}
    assert fields - {"stage", "gmsa"} <= dests


def test_flags_build_a_config_with_its_compressor_and_defaults_elsewhere():
    args = _parse("--data", "d.jsonl", "--output-dir", "out", "--rates", "4,8", "--lora-r", "16", "--resume", "latest")
    config = TrainConfig.from_options({**given_options(args, TrainConfig, GMSAConfig), "stage": "ae", "backbone": "b"})
    assert config.rates == [4, 8] and config.resume == "latest"
    assert config.gmsa.lora_r == 16 and config.gmsa.encoder_layers == GMSAConfig().encoder_layers
    assert config.max_steps == TrainConfig.max_steps  # not given: the dataclass default
    assert given_options(_parse("--rates", "4", "8"), TrainConfig)["rates"] == [4, 8]


def test_yaml_takes_flat_or_nested_compressor_fields_and_flags_win(tmp_path):
    path = tmp_path / "ae.yaml"
    path.write_text(
        "stage: ae\nbackbone: b\ndata: d\noutput-dir: o\nlora_r: 8\ngmsa:\n  encoder_layers: 3\nmax_steps: 7\n"
    )
    config = TrainConfig.from_yaml(path, max_steps=9)
    assert (config.gmsa.lora_r, config.gmsa.encoder_layers, config.max_steps) == (8, 3, 9)
    path.write_text("stage: ae\nbackbone: b\ndata: d\noutput_dir: o\nlora_rank: 8\n")
    with pytest.raises(ValueError, match=r"ae.yaml.*lora_rank"):
        TrainConfig.from_yaml(path)


def test_bad_flag_values_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        _parse("--rates", "4,x")
    with pytest.raises(SystemExit):
        _parse("--paradigm", "bogus")
    assert "invalid choice" in capsys.readouterr().err


def test_validation_flags_cut_passages_as_training_does(tmp_path):
    from gmsa_integrations.cli.train import _validation

    rows = [{"text": "Mira Solen was born in Kethport."}, {"question": "Q?", "answers": ["A"], "passages": ["P."]}]
    (tmp_path / "val.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in rows))
    args = _parse("--val-data", str(tmp_path / "val.jsonl"), "--val-every", "7", "--val-samples", "1")
    callback = _validation(args, max_length=32)(engine=None)
    assert (callback.every, callback.max_length) == (7, 32)
    assert [r.text for r in callback.ae_rows] == [rows[0]["text"]] and len(callback.qa_rows) == 1
