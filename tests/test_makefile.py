"""The default model's recipe in the Makefile: every stage, in order, with flags the CLI accepts."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from gmsa_integrations.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(tmp_path: Path, *args: str) -> str:
    dm = tmp_path / "dm"
    command = ["make", "-n", f"DM={dm}", f"DM_EXPORT={dm}/export", "DM_SETUP=", "PY=python", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_recipe_runs_every_stage_in_dependency_order_with_valid_flags(tmp_path):
    script = _dry_run(tmp_path, "default-model", "default-model-eval").replace("\\\n", " ")
    prefix = "python -m gmsa_integrations "
    commands = [shlex.split(line)[3:] for line in script.splitlines() if line.startswith(prefix)]
    stages = [" ".join(argv[:2]) if argv[0] in ("data", "train", "eval") else argv[0] for argv in commands]
    assert stages == [
        "data synth",
        "train backbone",
        "data synth",
        "train backbone",
        "train ae",
        "train keft",
        "export",
        "train ae",
        "eval qa",
        "eval recon",
    ]
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # argparse exits on a flag the CLI does not have


def test_recipe_sizes_and_steps_are_make_variables(tmp_path):
    script = _dry_run(tmp_path, "default-model", "DM_HIDDEN=512", "DM_BACKBONE_STEPS=20000", "DM_BATCH=64")
    assert "--hidden 512" in script and "--max-steps 20000" in script
    assert script.count("--batch-size 64") == 4  # backbone, restatement, autoencoder, KEFT
