"""GMSA training on Hugging Face `Trainer`: stage 1 (autoencoder) and stage 2 (KEFT), plus the fair baseline.

Stage ``baseline`` fine-tunes the backbone on the same QA data with the same decoder budget (LoRA or Q/K/V)
reading the passages as *text*: the full-context baseline that GMSA should be compared with, rather than
an un-tuned prompt. It is saved as a GMSA checkpoint with no compressor weights (encoder LoRA and LSA
off), whose tuned decoder serves ``decoder="keft"``.

`Trainer` brings DDP/FSDP/DeepSpeed (via torchrun or accelerate), bf16, gradient accumulation,
checkpoint/resume, progress bars and logging; this module only decides *what* is trained and
how a checkpoint is written (as a GMSA checkpoint that `GMSAEngine.from_pretrained` loads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..data.records import read_rows
from ..engine import GMSAConfig, GMSAEngine
from ..engine.checkpoint import WEIGHTS_NAME, load_tensors, read_config, save_tensors
from ..engine.checks import parse_positive_ints
from ..engine.merging import num_soft_tokens
from ..engine.prompts import ANSWER_TEMPLATE, PASSAGE_SEPARATOR, QUESTION_TEMPLATE
from ..io import atomic_write_bytes
from .objective import GMSACollator, GMSAObjective

Stage = Literal["ae", "keft", "baseline"]
KEFTMode = Literal["qkv", "full", "lora"]
KEFT_LORA_FILE = "keft_lora.safetensors"
DECODER_ADAPTER = "keft"
"""peft adapter name of the decoder LoRA (stage ``ae`` with ``ae_decoder=lora``, or KEFT ``lora``)."""
DECODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
"""Where every decoder LoRA goes (autoencoder, KEFT, baseline), so budgets compare and KEFT continues the AE's."""
QKV_PATTERN = re.compile(r"\.self_attn\.(q_proj|k_proj|v_proj)\.(weight|bias)$")


@dataclass
class TrainConfig:
    """Everything one training run needs; CLI flags and YAML keys use the same names."""

    stage: Stage
    """``ae`` (autoencoder pretraining) or ``keft`` (knowledge-extraction fine-tuning)."""
    data: str
    """JSON Lines file or a ``datasets.save_to_disk`` directory; several, comma-separated, are concatenated.
    Stage ``ae`` reads autoencoder rows and QA rows alike (a row with a ``question`` is QA)."""
    output_dir: str
    backbone: str | None = None
    """Local path or hub id of the backbone (stage ``ae`` from scratch)."""
    init: str | None = None
    """A GMSA checkpoint to continue from (required for ``keft``)."""
    max_steps: int = 1000
    batch_size: int = 4
    learning_rate: float | None = None
    """Default: 1e-4 for ``ae`` and 1e-5 for ``keft`` (the paper's)."""
    lsa_learning_rate: float | None = None
    """Stage ``ae``: the LSA block's own learning rate (default: ``learning_rate``). The LSA is a full pretrained
    decoder layer, while the encoder's LoRA starts at zero, so the rate that suits the LoRA can be far too high
    for it."""
    rates: list[int] = field(default_factory=lambda: [4, 8])
    """A compression rate is sampled per sample from this set; one value means fixed-rate training."""
    loss_per: Literal["token", "sample"] = "token"
    """How a batch's loss averages its target tokens: ``token``, every target token weighs the same (the paper's,
    and every shipped default model's); ``sample``, each sample's mean, then the mean over samples. In a stage
    that mixes QA and restatement rows, a restatement has ~20 times an answer's target tokens, so under
    ``token`` restatement is most of the gradient; ``sample`` gives an answer the weight of a restatement."""
    gmsa: GMSAConfig = field(default_factory=GMSAConfig)
    """The compressor built on ``backbone`` (encoder layers, LoRA, LSA, window, paradigm, AE instruction); a run
    from ``init`` keeps that checkpoint's. Its ``default_rate`` becomes the smallest of ``rates``, and a
    ``memory-tokens`` model with ``memory_tokens=0`` gets enough for that rate."""
    keft_mode: KEFTMode = "qkv"
    """``qkv``: the decoder's Q/K/V projections in every layer (paper v1); ``full``: the whole decoder (v2);
    ``lora``: LoRA on Q/K/V/O, stored as low-rank factors (small checkpoints, less training memory)."""
    ae_decoder: Literal["frozen", "qkv", "full", "lora"] = "frozen"
    """Stage ``ae``: ``frozen`` (the paper) or also tune the decoder, kept as overrides beside the original
    backbone: ``qkv``/``full`` densely, ``lora`` as a LoRA on Q/K/V/O (rank ``keft_lora_r``, stored as small
    factors). Small backbones learn to unpack merged tokens much faster with a tunable decoder."""
    keft_lora_r: int = 16
    """Rank of the decoder LoRA (``keft_mode=lora`` or ``ae_decoder=lora``); a KEFT LoRA of the same rank on
    a projection the autoencoder already tuned continues from those factors."""
    keft_lora_alpha: int = 32
    max_length: int = 512
    """Context tokens per passage (longer passages are truncated)."""
    qa_template: str = QUESTION_TEMPLATE
    """KEFT text after the soft tokens; the default is the layout both adapters send (`prompts.QA_TEMPLATE`)."""
    answer_template: str = ANSWER_TEMPLATE
    passage_separator: str = PASSAGE_SEPARATOR
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    warmup_steps: int = 0
    max_grad_norm: float = 2.0
    weight_decay: float = 0.0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    seed: int = 42
    bf16: bool | None = None
    """Mixed precision: the frozen backbone in bf16, trainable weights in fp32. Default: on where CUDA supports
    bf16, or, without CUDA, where the CPU has native bf16 (AVX-512 BF16 or AMX)."""
    resume: str | None = None
    """``latest``: the latest ``checkpoint-N`` in ``output_dir`` (a fresh start when there is none); or the path
    of a checkpoint."""
    show_progress: bool = True
    dataloader_workers: int = 0

    def __post_init__(self) -> None:
        if self.stage not in ("ae", "keft", "baseline"):
            raise ValueError(f"stage must be 'ae', 'keft' or 'baseline', got {self.stage!r}")
        if self.stage == "keft" and not self.init:
            raise ValueError("KEFT starts from an autoencoder checkpoint: pass init (--init DIR)")
        if self.stage in ("ae", "baseline") and not (self.backbone or self.init):
            raise ValueError(f"stage {self.stage} needs backbone (--backbone PATH_OR_ID) or init (--init DIR)")
        if self.keft_mode not in ("qkv", "full", "lora"):
            raise ValueError(f"keft_mode must be 'qkv', 'full' or 'lora', got {self.keft_mode!r}")
        if self.loss_per not in ("token", "sample"):
            raise ValueError(f"loss_per must be 'token' or 'sample', got {self.loss_per!r}")
        if self.ae_decoder not in ("frozen", "qkv", "full", "lora"):
            raise ValueError(f"ae_decoder must be 'frozen', 'qkv', 'full' or 'lora', got {self.ae_decoder!r}")
        if isinstance(self.gmsa, dict):
            self.gmsa = GMSAConfig.from_dict(self.gmsa)
        if not isinstance(self.gmsa, GMSAConfig):
            raise TypeError(f"gmsa must be a GMSAConfig or a dict of its fields, got {type(self.gmsa).__name__}")
        if self.resume is True:
            self.resume = "latest"
        elif self.resume is False:
            self.resume = None
        if isinstance(self.rates, str):
            self.rates = parse_positive_ints(self.rates, "rates")
        if not self.rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in self.rates):
            raise ValueError(f"rates must be positive ints, got {self.rates!r}")
        for name in ("max_steps", "batch_size", "max_length", "gradient_accumulation_steps", "logging_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.learning_rate is None:
            self.learning_rate = 1e-4 if self.stage == "ae" else 1e-5
        if self.lsa_learning_rate is not None:
            if isinstance(self.lsa_learning_rate, bool) or not isinstance(self.lsa_learning_rate, (int, float)):
                raise TypeError(f"lsa_learning_rate must be a number, got {type(self.lsa_learning_rate).__name__}")
            if self.lsa_learning_rate < 0:
                raise ValueError(f"lsa_learning_rate must be >= 0, got {self.lsa_learning_rate}")
            if self.stage != "ae":
                raise ValueError(
                    f"lsa_learning_rate applies to stage ae only; stage {self.stage} does not train the LSA"
                )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TrainConfig:
        """A config from flat options, as the command line and YAML give them: `GMSAConfig` fields go to ``gmsa``
        (a nested ``gmsa`` mapping is read too); an unknown name is a ValueError."""
        options = {k.replace("-", "_"): v for k, v in options.items()}
        own = {f.name for f in dataclasses.fields(cls)}
        compressor = {f.name for f in dataclasses.fields(GMSAConfig)}
        unknown = sorted(set(options) - own - compressor)
        if unknown:
            raise ValueError(f"unknown training options {unknown}")
        gmsa = dict(options.pop("gmsa", None) or {})
        gmsa.update({k: options.pop(k) for k in list(options) if k in compressor and k not in own})
        return cls(**options, gmsa=GMSAConfig.from_dict(gmsa))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """A config from a YAML mapping with the same names as the flags; ``overrides`` (not None) win."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of training options")
        try:
            return cls.from_options({**data, **{k: v for k, v in overrides.items() if v is not None}})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


class _IndexedRows(Dataset):
    def __init__(self, rows: list) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.rows[index]


class JsonlLogCallback(TrainerCallback):
    """Appends one JSON object per logging step (``step``, ``loss``, ``learning_rate``, ..., and ``time``, the
    Unix time, from which step times and tokens/s follow) to log.jsonl.

    A fresh run starts a fresh log; a resumed run keeps the records up to the step it resumes from and
    drops any the interrupted run wrote after its last checkpoint, so every step appears once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, args: Any, state: TrainerState, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= state.global_step
        ]
        atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())

    def on_log(
        self, args: Any, state: TrainerState, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        record = {"step": state.global_step, **logs, "time": round(time.time(), 2)}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class GMSATrainer(Trainer):
    """`Trainer` whose checkpoints are GMSA checkpoints (safetensors + JSON), not a raw state dict."""

    def __init__(self, *args: Any, engine: GMSAEngine, lsa_learning_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.lsa_learning_rate = lsa_learning_rate

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """Trainer's optimizer, with the LSA's parameters in groups of their own at ``lsa_learning_rate``
        (the schedule scales every group's rate alike)."""
        if self.optimizer is not None or self.lsa_learning_rate is None:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        lsa = {id(p) for p in self.engine.model.lsa.parameters() if p.requires_grad}
        groups = []
        for group in optimizer.param_groups:
            for in_lsa in (False, True):
                params = [p for p in group["params"] if (id(p) in lsa) == in_lsa]
                if params:
                    groups.append({**group, "params": params, **({"lr": self.lsa_learning_rate} if in_lsa else {})})
        optimizer.param_groups.clear()  # no state yet: regrouping is all that changes
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        output_dir = output_dir or self.args.output_dir
        lora = _decoder_lora_layers(self.engine)
        if not lora:
            self.engine.save_pretrained(output_dir)
            return
        # decoder LoRA: save it folded as override factors (what from_pretrained reads) plus A/B (what resume reads)
        save_tensors(Path(output_dir) / KEFT_LORA_FILE, _lora_state(lora))
        with _lora_folded(self.engine, lora):
            self.engine.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        lora = _decoder_lora_layers(self.engine)
        if lora:
            state = load_tensors(Path(resume_from_checkpoint) / KEFT_LORA_FILE)
            with torch.no_grad():
                for name, tensor in _lora_state(lora).items():
                    tensor.copy_(state[name])
            return
        meta = read_config(resume_from_checkpoint)
        tensors = load_tensors(Path(resume_from_checkpoint) / WEIGHTS_NAME, meta.get("weights_sha256"))
        self.engine.model.load_gmsa_state_dict(tensors)


def _decoder_lora_layers(engine: GMSAEngine) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in engine.model.backbone.named_modules() if isinstance(m, LoraLayer)}


def _lora_state(layers: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{part}": getattr(module, part)[DECODER_ADAPTER].weight.data
        for name, module in layers.items()
        for part in ("lora_A", "lora_B")
    }


def _inject_decoder_lora(engine: GMSAEngine, targets: list[str], r: int, alpha: int) -> None:
    """LoRA on the decoder's ``targets`` projections. A projection that already carries LoRA factors of the
    same rank (from ``--init``) continues from them, on the original weight; any other tuned weight stays
    the frozen base that the new LoRA adds to."""
    from peft import LoraConfig, inject_adapter_in_model

    model = engine.model
    previous, factors = model.decoder_overrides(), model.decoder_lora()
    targeted = re.compile(r"\.(" + "|".join(map(re.escape, targets)) + r")\.weight$")
    resumed = {k for k, (lora_a, _) in factors.items() if targeted.search(k) and lora_a.shape[0] == r}
    dense = {k: v for k, v in previous.items() if k not in factors}
    model.set_decoder_overrides(dense, lora={k: v for k, v in factors.items() if k not in resumed})
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets)
    inject_adapter_in_model(config, model.backbone, adapter_name=DECODER_ADAPTER)
    layers = _decoder_lora_layers(engine)
    with torch.no_grad():
        for name, module in layers.items():
            for lora in (module.lora_A[DECODER_ADAPTER], module.lora_B[DECODER_ADAPTER]):
                lora.float()  # trained in fp32, and a resumed factor is copied in exactly
            if f"{name}.weight" in resumed:
                lora_a, lora_b = factors[f"{name}.weight"]
                module.lora_A[DECODER_ADAPTER].weight.copy_(lora_a)
                module.lora_B[DECODER_ADAPTER].weight.copy_(lora_b / module.scaling[DECODER_ADAPTER])
    for name, param in model.backbone.named_parameters():
        param.requires_grad = "lora_" in name


def _fold_lora(engine: GMSAEngine, layers: dict[str, Any]) -> tuple[dict, dict]:
    """Replace each LoRA-wrapped projection by its plain base, the LoRA becoming low-rank factors of a
    decoder override (stacked onto factors the base already carried). Returns the overrides that were in
    place before (for `_unfold_lora`)."""
    model = engine.model
    previous, previous_lora = model.decoder_overrides(), model.decoder_lora()
    dense = {k: v for k, v in previous.items() if k not in previous_lora}
    lora = dict(previous_lora)
    with torch.no_grad():
        for name, module in layers.items():
            key = f"{name}.weight"
            lora_a = module.lora_A[DECODER_ADAPTER].weight.detach().clone()
            lora_b = module.lora_B[DECODER_ADAPTER].weight.detach() * module.scaling[DECODER_ADAPTER]
            if key in dense:  # a densely tuned weight: fold the LoRA into it
                dense[key] = dense[key] + (lora_b.float() @ lora_a.float()).to(dense[key].dtype)
            elif key in lora:
                old_a, old_b = lora[key]
                lora[key] = (torch.cat([old_a, lora_a.to(old_a.dtype)]), torch.cat([old_b, lora_b.to(old_b.dtype)], 1))
            else:
                lora[key] = (lora_a, lora_b)
    for name, module in layers.items():
        parent, _, child = name.rpartition(".")
        setattr(model.backbone.get_submodule(parent), child, module.base_layer)
    model.set_decoder_overrides(dense, lora=lora)
    return {k: v for k, v in previous.items() if k not in previous_lora}, previous_lora


def _unfold_lora(engine: GMSAEngine, layers: dict[str, Any], previous: tuple[dict, dict]) -> None:
    engine.model.set_decoder_overrides(previous[0], lora=previous[1])
    for name, module in layers.items():
        parent, _, child = name.rpartition(".")
        setattr(engine.model.backbone.get_submodule(parent), child, module)


@contextlib.contextmanager
def _lora_folded(engine: GMSAEngine, layers: dict[str, Any]):
    previous = _fold_lora(engine, layers)
    try:
        yield
    finally:
        _unfold_lora(engine, layers, previous)


def _build_engine(config: TrainConfig) -> GMSAEngine:
    dtype = torch.bfloat16 if _use_bf16(config) else torch.float32
    if config.init:
        engine = GMSAEngine.from_pretrained(config.init, dtype=dtype)
        if dtype != torch.float32:
            _compressor_in_fp32(engine, config.init)
    elif config.stage == "baseline":  # no compressor: one untouched encoder layer, no LoRA, no LSA
        gmsa = GMSAConfig(encoder_layers=1, lsa_layers=0, lora_r=0, max_window_tokens=config.gmsa.max_window_tokens)
        engine = GMSAEngine.from_backbone(config.backbone, config=gmsa, dtype=dtype)
    else:
        gmsa = dataclasses.replace(config.gmsa, default_rate=min(config.rates))
        if gmsa.paradigm == "memory-tokens":
            memory = gmsa.memory_tokens or num_soft_tokens(gmsa.max_window_tokens, min(config.rates))
            gmsa = dataclasses.replace(gmsa, lsa_layers=0, memory_tokens=memory)
        engine = GMSAEngine.from_backbone(config.backbone, config=gmsa, dtype=dtype)
        if Path(config.backbone).is_dir():
            engine.backbone_ref = str(Path(config.backbone).resolve())
    return engine


def _compressor_in_fp32(engine: GMSAEngine, directory: str) -> None:
    # Loading into a bf16 model rounds the checkpoint's encoder LoRA and LSA. A stage that freezes them (KEFT)
    # would save the rounded copy, a new compressor fingerprint that refuses the soft tokens indexed before it;
    # one that trains them would start off its checkpoint. Autocast runs them in bf16 all the same.
    state = load_tensors(Path(directory) / WEIGHTS_NAME)
    own = {k: v for k, v in engine.model.gmsa_state_dict().items() if not k.startswith(("decoder.", "decoder_lora."))}
    for name in own:
        param = engine.model.get_parameter(name)
        param.data = state[name].to(device=param.device, dtype=torch.float32)


def _tune_decoder(model: Any, mode: str) -> None:
    """Unfreeze the decoder's Q/K/V (``qkv``) or all of it (``full``) as overrides of the backbone."""
    tied = model.backbone.get_input_embeddings().weight
    names = []
    for name, param in model.backbone.named_parameters():
        if param is tied:
            continue  # the encoder shares the input embeddings; changing them would change soft tokens
        if mode == "full" or QKV_PATTERN.search(name):
            names.append(name)
    overrides = {n: model.backbone.get_parameter(n).data for n in names}
    model.set_decoder_overrides({**model.decoder_overrides(), **overrides})
    for name in names:
        model.backbone.get_parameter(name).requires_grad = True


def select_trainable(
    engine: GMSAEngine,
    stage: Stage,
    keft_mode: KEFTMode = "qkv",
    lora_r: int = 16,
    lora_alpha: int = 32,
    ae_decoder: str = "frozen",
) -> list[str]:
    """Freeze everything, then unfreeze exactly what the stage trains; returns the trainable names."""
    model = engine.model
    model.unmerge_encoder_lora()  # train the adapters, not weights they were folded into
    model.requires_grad_(False)
    if stage == "ae":
        for name, param in model.encoder.named_parameters():
            param.requires_grad = "lora_" in name
        if model.config.paradigm == "memory-tokens":
            model.memory.requires_grad = True
            model.memory_mlp.requires_grad_(True)
        else:
            model.lsa.requires_grad_(True)
        if ae_decoder not in ("frozen", "qkv", "full", "lora"):
            raise ValueError(f"ae_decoder must be 'frozen', 'qkv', 'full' or 'lora', got {ae_decoder!r}")
        if ae_decoder == "lora":
            _inject_decoder_lora(engine, DECODER_LORA_TARGETS, lora_r, lora_alpha)
        elif ae_decoder != "frozen":
            _tune_decoder(model, ae_decoder)
    else:
        if keft_mode not in ("qkv", "full", "lora"):
            raise ValueError(f"keft_mode must be 'qkv', 'full' or 'lora', got {keft_mode!r}")
        if keft_mode == "lora":
            _inject_decoder_lora(engine, DECODER_LORA_TARGETS, lora_r, lora_alpha)
        else:
            _tune_decoder(model, keft_mode)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # optimizer state and updates in fp32; autocast does the rest
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _use_bf16(config: TrainConfig) -> bool:
    if config.bf16 is not None:
        return bool(config.bf16)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return _cpu_has_native_bf16()


def _cpu_has_native_bf16() -> bool:
    # AVX-512 BF16 or AMX: a whole CPU stage ran 1.14x faster than fp32 with the same quality (model card);
    # elsewhere bf16 is emulated and slower. The probes are private to torch.cpu, hence the fallback.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def train(config: TrainConfig, callbacks: Sequence[Callable[[GMSAEngine], TrainerCallback]] = ()) -> GMSAEngine:
    """Run one training stage and write a GMSA checkpoint (plus ``log.jsonl``) to ``config.output_dir``.

    Args:
        callbacks: factories of extra `TrainerCallback`s, each given the engine being trained (e.g. a
            validation callback from `gmsa_integrations.evaluation`).
    """
    # stage ae also takes QA rows: restating and answering from the same soft tokens (mixed training)
    rows = [
        row for path in config.data.split(",") for row in read_rows(path, "mixed" if config.stage == "ae" else "qa")
    ]
    engine = _build_engine(config)
    if config.lsa_learning_rate is not None and (
        engine.config.paradigm != "group-merging" or engine.config.lsa_layers == 0
    ):
        raise ValueError("lsa_learning_rate needs an LSA block (group-merging paradigm with lsa_layers >= 1)")
    select_trainable(
        engine, config.stage, config.keft_mode, config.keft_lora_r, config.keft_lora_alpha, config.ae_decoder
    )
    if config.gradient_checkpointing:
        engine.model.encoder.gradient_checkpointing_enable({"use_reentrant": False})
        engine.model.backbone.gradient_checkpointing_enable({"use_reentrant": False})
    collator = GMSACollator(
        engine.tokenizer,
        rates=config.rates,
        max_length=config.max_length,
        instruction=engine.config.ae_instruction,
        qa_template=config.qa_template,
        answer_template=config.answer_template,
        passage_separator=config.passage_separator,
        seed=config.seed,
        context_as_text=config.stage == "baseline",
        eos_token_id=engine.eos_token_id,
    )
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        bf16=_use_bf16(config),
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=not config.show_progress,
        dataloader_num_workers=config.dataloader_workers,
        ddp_find_unused_parameters=False,
    )
    trainer = GMSATrainer(
        model=GMSAObjective(
            engine.model,
            train_compressor=config.stage == "ae",
            window_tokens=engine.window_tokens,
            loss_per=config.loss_per,
        ),
        args=args,
        train_dataset=_IndexedRows(rows),
        data_collator=collator,
        callbacks=[JsonlLogCallback(output_dir / "log.jsonl"), *(make(engine) for make in callbacks)],
        engine=engine,
        lsa_learning_rate=config.lsa_learning_rate,
    )
    resume = config.resume
    if resume == "latest":
        resume = get_last_checkpoint(str(output_dir))
    trainer.train(resume_from_checkpoint=resume or None)
    engine.model.eval()
    if trainer.is_world_process_zero():
        trainer.save_model(str(output_dir))
    lora = _decoder_lora_layers(engine)
    if lora:  # the returned engine serves the tuned decoder as dense overrides, like a loaded one
        _fold_lora(engine, lora)
    engine.refresh_fingerprint()
    return engine
