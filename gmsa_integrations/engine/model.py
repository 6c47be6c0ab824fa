"""The GMSA network: encoder (first k backbone layers + LoRA) -> group merging -> LSA -> decoder.

`GMSAModel` owns torch modules only; tokenisation, batching and generation live in `engine.py`.
The decoder is the backbone itself. The encoder and the LSA block are *copies* of backbone layers,
so fine-tuning the decoder (KEFT) never changes the encoder's view of a passage.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from .config import GMSAConfig
from .merging import group_merge


class _NoEmbedding(nn.Module):
    """Stands in for ``embed_tokens`` in the LSA copy, which only ever receives ``inputs_embeds``."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("the LSA module reads inputs_embeds only")


def base_model_of(causal_lm: PreTrainedModel) -> PreTrainedModel:
    """The transformer stack (e.g. ``LlamaModel``) inside an ``AutoModelForCausalLM``."""
    base = getattr(causal_lm, getattr(causal_lm, "base_model_prefix", "model"), None)
    if base is None or not hasattr(base, "layers") or not hasattr(base, "embed_tokens"):
        raise TypeError(
            f"{type(causal_lm).__name__} is not a Llama/Qwen2-style causal LM "
            "(expected `.model.layers` and `.model.embed_tokens`)"
        )
    return base


def truncated_copy(causal_lm: PreTrainedModel, num_layers: int, *, share_embeddings: bool) -> PreTrainedModel:
    """A base model holding deep copies of the first ``num_layers`` layers and the final norm.

    Built on the meta device and filled with copies, so no weights are randomly initialised and
    the dtype/device of the backbone carry over.
    """
    base = base_model_of(causal_lm)
    total = len(base.layers)
    if not 0 <= num_layers <= total:
        raise ValueError(f"cannot take {num_layers} layers from a backbone with {total} layers")
    config = copy.deepcopy(base.config)
    for name, value in list(vars(config).items()):
        if isinstance(value, list) and len(value) == total and name != "architectures":
            setattr(config, name, value[:num_layers])  # per-layer settings such as Qwen2's layer_types
    config.num_hidden_layers = num_layers
    with torch.device("meta"):
        copy_model = type(base)(config)
    copy_model.embed_tokens = base.embed_tokens if share_embeddings else _NoEmbedding()
    copy_model.layers = nn.ModuleList(copy.deepcopy(base.layers[i]) for i in range(num_layers))
    for name, child in base.named_children():
        if name not in ("embed_tokens", "layers"):
            setattr(copy_model, name, copy.deepcopy(child))
    leftovers = [n for n, t in [*copy_model.named_parameters(), *copy_model.named_buffers()] if t.is_meta]
    if leftovers:
        raise TypeError(f"unsupported backbone {type(base).__name__}: could not copy {leftovers[:3]}")
    return copy_model


def _linear_names(module: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in module.named_modules() if isinstance(m, nn.Linear)})


class GMSAModel(nn.Module):
    """Encoder, group merging, Layer Semantic Alignment and decoder, as one module."""

    def __init__(self, backbone: PreTrainedModel, config: GMSAConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        base = base_model_of(backbone)
        num_layers = len(base.layers)
        if config.encoder_layers > num_layers:
            raise ValueError(f"encoder_layers={config.encoder_layers} exceeds the backbone's {num_layers} layers")
        if config.lsa_layers > num_layers:
            raise ValueError(f"lsa_layers={config.lsa_layers} exceeds the backbone's {num_layers} layers")
        backbone.requires_grad_(False)

        self.encoder = truncated_copy(backbone, config.encoder_layers, share_embeddings=True)
        self.encoder.requires_grad_(False)
        if config.lora_r > 0:
            from peft import LoraConfig, inject_adapter_in_model

            targets = config.lora_target_modules or _linear_names(self.encoder.layers)
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
            )
            inject_adapter_in_model(lora, self.encoder)
            for module in self.encoder.modules():  # new adapters follow the backbone's device/dtype
                for child_name in ("lora_A", "lora_B"):
                    if hasattr(module, child_name):
                        getattr(module, child_name).to(base.embed_tokens.weight.dtype)

        self.lsa = truncated_copy(backbone, config.lsa_layers, share_embeddings=False)
        self.lsa.requires_grad_(True)
        if config.lsa_layers and config.lsa_output_scale == "embeddings":
            self._scale_lsa_to_embeddings()

        hidden = backbone.config.hidden_size
        if config.paradigm == "memory-tokens":
            if config.memory_tokens < 1:
                raise ValueError("the memory-tokens paradigm needs GMSAConfig.memory_tokens >= 1")
            dtype, device = base.embed_tokens.weight.dtype, base.embed_tokens.weight.device
            self.memory = nn.Parameter(torch.randn(config.memory_tokens, hidden, dtype=dtype, device=device) * 0.02)
            self.memory_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden)).to(
                device=device, dtype=dtype
            )
        self._original_decoder: dict[str, torch.Tensor] = {}
        self._decoder_lora: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _scale_lsa_to_embeddings(self) -> None:
        """Rescale the LSA's copy of the final RMSNorm so its outputs have the input embeddings' mean norm.

        An RMSNorm output has norm ~ ||weight|| for unit-RMS inputs, so one scalar sets the scale."""
        norm = getattr(self.lsa, "norm", None)
        weight = getattr(norm, "weight", None)
        if weight is None:
            return
        with torch.no_grad():
            target = self.embed_tokens.weight.float().norm(dim=-1).mean()
            weight.mul_((target / weight.float().norm()).to(weight.dtype))

    # ----------------------------------------------------------------------------- parts
    @property
    def hidden_size(self) -> int:
        return self.backbone.config.hidden_size

    @property
    def embed_tokens(self) -> nn.Embedding:
        return base_model_of(self.backbone).embed_tokens

    def gmsa_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights GMSA adds on top of the backbone (what a checkpoint stores)."""
        state: dict[str, torch.Tensor] = {}
        for name, tensor in self.encoder.state_dict().items():
            if "lora_" in name:
                state[f"encoder.{name}"] = tensor
        for name, tensor in self.lsa.state_dict().items():
            state[f"lsa.{name}"] = tensor
        if self.config.paradigm == "memory-tokens":
            state["memory"] = self.memory.data
            for name, tensor in self.memory_mlp.state_dict().items():
                state[f"memory_mlp.{name}"] = tensor
        for name, tensor in self.decoder_overrides().items():
            if name in self._decoder_lora:
                lora_a, lora_b = self._decoder_lora[name]
                state[f"decoder_lora.{name}.A"], state[f"decoder_lora.{name}.B"] = lora_a, lora_b
            else:
                state[f"decoder.{name}"] = tensor
        return state

    def load_gmsa_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of `gmsa_state_dict`; ``decoder.*`` entries become KEFT overrides of the backbone."""
        overrides = {k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")}
        lora: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in state.items():
            if key.startswith("decoder_lora."):
                name, _, part = key[len("decoder_lora.") :].rpartition(".")
                lora.setdefault(name, {})[part] = tensor
        if any(set(parts) != {"A", "B"} for parts in lora.values()):
            raise KeyError(f"decoder LoRA tensors must come in A/B pairs, got {sorted(lora)[:5]}")
        own = {k: v for k, v in state.items() if not k.startswith(("decoder.", "decoder_lora."))}
        expected = {k: v for k, v in self.gmsa_state_dict().items() if not k.startswith(("decoder.", "decoder_lora."))}
        missing, unexpected = sorted(set(expected) - set(own)), sorted(set(own) - set(expected))
        if missing or unexpected:
            raise KeyError(f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
        for name, tensor in own.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise ValueError(
                    f"tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
                )
        with torch.no_grad():
            for name, tensor in own.items():
                expected[name].copy_(tensor)
        self.set_decoder_overrides(overrides, lora={n: (p["A"], p["B"]) for n, p in lora.items()})

    # ----------------------------------------------------------------------------- encoder LoRA merging
    def _lora_layers(self) -> list[tuple[str, nn.Module]]:
        from peft.tuners.lora import LoraLayer

        return [(name, m) for name, m in self.encoder.named_modules() if isinstance(m, LoraLayer)]

    @property
    def encoder_lora_merged(self) -> bool:
        return any(m.merged for _, m in self._lora_layers())

    def merge_encoder_lora(self) -> None:
        """Fold the LoRA deltas into the encoder's weights, so inference pays no LoRA branch."""
        with torch.no_grad():
            for _, module in self._lora_layers():
                if not module.merged:
                    module.merge()

    def unmerge_encoder_lora(self) -> None:
        """Undo `merge_encoder_lora` exactly: base weights are copied back from the original backbone."""
        layers = self._lora_layers()
        if not any(m.merged for _, m in layers):
            return
        base = base_model_of(self.backbone)
        with torch.no_grad(), self.original_decoder():
            for name, module in layers:
                original = base.get_submodule(name)  # e.g. layers.0.self_attn.q_proj in the backbone
                module.merged_adapters.clear()
                module.base_layer.weight.copy_(original.weight)

    def encoder_source_tensors(self) -> dict[str, torch.Tensor]:
        """What determines soft tokens besides GMSA's own weights: the backbone's embeddings and
        first ``encoder_layers`` layers as originally loaded (independent of LoRA merging and KEFT)."""
        base = base_model_of(self.backbone)
        out: dict[str, torch.Tensor] = {}
        with self.original_decoder():
            for name, tensor in base.embed_tokens.state_dict().items():
                out[f"embed_tokens.{name}"] = tensor
            for i in range(self.config.encoder_layers):
                for name, tensor in base.layers[i].state_dict().items():
                    out[f"layers.{i}.{name}"] = tensor
        return out

    # ----------------------------------------------------------------------------- KEFT overrides
    def set_decoder_overrides(
        self,
        overrides: dict[str, torch.Tensor],
        lora: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        """Replace some decoder weights by tuned ones, keeping the originals for the plain-text path.

        ``lora`` maps a weight's name to low-rank factors ``(A [r, in], B [out, r])`` (B already scaled):
        the tuned weight is ``W + B @ A``. Checkpoints store the factors, not the dense weight.
        """
        self.restore_original_decoder()
        lora = lora or {}
        for name in sorted(set(overrides) & set(lora)):
            raise ValueError(f"decoder tensor {name!r} is given both densely and as LoRA factors")
        for name, (lora_a, lora_b) in lora.items():
            param = self._parameter(name)
            shapes_fit = lora_a.dim() == lora_b.dim() == 2 and lora_a.shape[0] == lora_b.shape[1]
            if not shapes_fit or (lora_b.shape[0], lora_a.shape[1]) != tuple(param.shape):
                raise ValueError(
                    f"decoder LoRA for {name!r} has shapes A {tuple(lora_a.shape)}, B {tuple(lora_b.shape)}; "
                    f"B @ A must have the weight's shape {tuple(param.shape)}"
                )
        for name, tensor in overrides.items():
            param = self._parameter(name)
            if tuple(param.shape) != tuple(tensor.shape):
                raise ValueError(f"KEFT tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)}")
            self._original_decoder[name] = param.data
            param.data = tensor.to(device=param.device, dtype=param.dtype).clone()
        for name, (lora_a, lora_b) in lora.items():
            param = self._parameter(name)
            lora_a, lora_b = (t.to(device=param.device, dtype=torch.float32) for t in (lora_a, lora_b))
            self._original_decoder[name] = param.data
            param.data = (param.data.float() + lora_b @ lora_a).to(param.dtype)
            self._decoder_lora[name] = (lora_a, lora_b)  # fp32: a bf16 model saves or resumes them exactly

    def _parameter(self, name: str) -> nn.Parameter:
        module, _, leaf = name.rpartition(".")
        for candidate in (name, f"{module}.base_layer.{leaf}"):  # the latter while training wraps it in LoRA
            with contextlib.suppress(AttributeError):
                return self.backbone.get_parameter(candidate)
        raise KeyError(f"decoder tensor {name!r} is not a parameter of the backbone")

    def decoder_lora(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The overrides that are low-rank, as ``{name: (A, B)}`` (``W_tuned = W + B @ A``)."""
        return dict(self._decoder_lora)

    def restore_original_decoder(self) -> None:
        """Drop every KEFT override (the decoder becomes the untouched backbone again)."""
        for name, original in self._original_decoder.items():
            self._parameter(name).data = original
        self._original_decoder = {}
        self._decoder_lora = {}

    def decoder_overrides(self) -> dict[str, torch.Tensor]:
        """The KEFT-tuned decoder tensors currently in place, by backbone parameter name."""
        return {name: self._parameter(name).data for name in self._original_decoder}

    @property
    def has_decoder_overrides(self) -> bool:
        return bool(self._original_decoder)

    @contextlib.contextmanager
    def original_decoder(self) -> Iterator[None]:
        """Temporarily serve the backbone as it was before KEFT (callers hold the engine lock)."""
        tuned = {name: self._parameter(name).data for name in self._original_decoder}
        for name, original in self._original_decoder.items():
            self._parameter(name).data = original
        try:
            yield
        finally:
            for name, tensor in tuned.items():
                self._parameter(name).data = tensor

    # ----------------------------------------------------------------------------- compression
    def encode_and_merge(
        self, input_ids: torch.Tensor, lengths: torch.Tensor, rate: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder + group merging over right-padded windows -> ``(pooled [W, G, H], counts [W])``."""
        if self.config.paradigm == "memory-tokens":
            return self._encode_memory_tokens(input_ids, lengths, rate)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        attention_mask = (positions[None, :] < lengths[:, None]).long()
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return group_merge(hidden, lengths, rate)

    def _encode_memory_tokens(
        self, input_ids: torch.Tensor, lengths: torch.Tensor, rate: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ICAE-style baseline: learnable memory tokens follow the context; their states become soft tokens."""
        counts = (lengths + rate - 1) // rate
        if int(counts.max()) > self.config.memory_tokens:
            raise ValueError(
                f"this memory-tokens model has {self.config.memory_tokens} memory tokens; "
                f"rate {rate} over a {int(lengths.max())}-token window needs {int(counts.max())}"
            )
        batch = input_ids.shape[0]
        width = int((lengths + counts).max())
        embeds = self.embed_tokens(input_ids)
        rows = torch.zeros(batch, width, self.hidden_size, dtype=embeds.dtype, device=embeds.device)
        mask = torch.zeros(batch, width, dtype=torch.long, device=embeds.device)
        for b in range(batch):
            length, count = int(lengths[b]), int(counts[b])
            rows[b, :length] = embeds[b, :length]
            rows[b, length : length + count] = self.memory[:count]
            mask[b, : length + count] = 1
        hidden = self.encoder(inputs_embeds=rows, attention_mask=mask).last_hidden_state
        pooled = torch.zeros(batch, int(counts.max()), self.hidden_size, dtype=hidden.dtype, device=hidden.device)
        for b in range(batch):
            length, count = int(lengths[b]), int(counts[b])
            pooled[b, :count] = self.memory_mlp(hidden[b, length : length + count])
        return pooled, counts

    def align(self, pooled: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Layer Semantic Alignment over right-padded pooled vectors (causal, positions 0..m-1)."""
        if self.config.paradigm == "memory-tokens" or self.config.lsa_layers == 0:
            return pooled
        positions = torch.arange(pooled.shape[1], device=pooled.device)
        attention_mask = (positions[None, :] < counts[:, None]).long()
        position_ids = positions[None, :].expand(pooled.shape[0], -1)
        out = self.lsa(inputs_embeds=pooled, attention_mask=attention_mask, position_ids=position_ids)
        return out.last_hidden_state
