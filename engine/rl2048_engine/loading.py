"""Load a causal LM folder onto a device, ready for generation and LoRA training.

Any folder transformers loads works. A gpt-oss folder with MXFP4 experts (as published) loads
without triton or the `kernels` package: the experts are dequantized with `mxfp4.py` straight
into the model's parameters, in the dtype asked for. Then, as asked: embeddings offloaded to CPU
memory, gradient checkpointing, and either a PEFT LoRA adapter (attention projections, and
gpt-oss experts through `target_parameters`), full fine-tuning, or a frozen model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedModel

from .errors import EngineError
from .mxfp4 import mxfp4_to_expert_param
from .offload import offload_embeddings
from .params import LoadParams

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class LoadedModel:
    """The model and what the other methods need to know about it."""

    model: nn.Module
    """What the methods call: a `PeftModel` with LoRA, else `causal_lm` itself."""
    causal_lm: PreTrainedModel
    """The transformers model (inside the PEFT wrapper when there is one)."""
    reference: PreTrainedModel | None
    """A frozen copy of the initial weights, kept for the KL term of full fine-tuning only."""
    folder: Path
    device: torch.device
    dtype: torch.dtype
    stop_token_ids: list[int]
    mxfp4_source: bool
    embeddings_offloaded: bool

    @property
    def has_lora(self) -> bool:
        return isinstance(self.model, PeftModel)

    @property
    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise EngineError("bad_request", f"unknown device {name!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("bad_request", "device cuda asked for, but no CUDA GPU is visible")
    return device


def load_model(params: LoadParams) -> LoadedModel:
    folder = Path(params.model)
    if not (folder / "config.json").is_file():
        raise EngineError("model_folder", f"{folder}: not a model folder (no config.json)")
    device = resolve_device(params.device)
    dtype = DTYPES[params.dtype]
    torch.manual_seed(params.seed)

    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise EngineError("model_folder", f"{folder}: invalid config.json: {err}") from err
    mxfp4 = _quant_method(config) == "mxfp4"
    try:
        if params.experts == "mxfp4":
            causal_lm = _load_resident(folder, config, device, dtype, mxfp4)
        else:
            causal_lm = _load_mxfp4(folder, config, device, dtype) if mxfp4 else _load_plain(folder, device, dtype)
    except (OSError, ValueError, KeyError) as err:
        raise EngineError("model_folder", f"{folder}: cannot load the weights: {err}") from err

    offloaded = params.offload_embeddings and device.type != "cpu" and not embeddings_tied(causal_lm)
    if offloaded:
        offload_embeddings(causal_lm.get_input_embeddings(), device)
    if params.gradient_checkpointing:
        _enable_checkpointing(causal_lm, lora_dropout=params.lora.dropout if params.lora else 0.0)
    causal_lm.config.use_cache = True

    causal_lm.requires_grad_(params.full_finetune)
    reference = None
    if params.full_finetune:
        reference = copy.deepcopy(causal_lm).requires_grad_(False).eval()
    model: nn.Module = causal_lm
    if params.lora is not None:
        lora = params.lora
        config_lora = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules or None,
            target_parameters=lora.target_parameters or None,
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            model = get_peft_model(causal_lm, config_lora)
        except ValueError as err:
            raise EngineError("bad_request", f"lora: {err}") from err
    model.eval()

    return LoadedModel(
        model=model,
        causal_lm=causal_lm,
        reference=reference,
        folder=folder,
        device=device,
        dtype=dtype,
        stop_token_ids=_stop_token_ids(folder, causal_lm),
        mxfp4_source=mxfp4,
        embeddings_offloaded=offloaded,
    )


def _enable_checkpointing(model: PreTrainedModel, lora_dropout: float = 0.0) -> None:
    """Activation checkpointing; the method was renamed in transformers 5.2x (5.17 has the old one).
    The RNG state is kept for the recompute only when the forward draws random numbers (dropout):
    keeping it reads the CUDA generator, which a CUDA graph capture forbids (fast/training.py)."""
    dropout = lora_dropout > 0 or getattr(model.config, "attention_dropout", 0.0) > 0
    dropout = dropout or any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    kwargs = {"use_reentrant": False, "preserve_rng_state": dropout}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _quant_method(config: object) -> str | None:
    quant = getattr(config, "quantization_config", None)
    if quant is None:
        return None
    return quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)


def _load_resident(folder: Path, config: object, device: torch.device, dtype: torch.dtype, mxfp4: bool) -> PreTrainedModel:
    """Experts kept packed on the device (fast/mxfp4_experts.py); only for MXFP4 gpt-oss folders."""
    from .fast.mxfp4_experts import load_resident

    if not mxfp4:
        raise EngineError("bad_request", f"experts mxfp4 needs a folder with MXFP4 experts; {folder} has none")
    return load_resident(folder, config, device, dtype)


def _load_plain(folder: Path, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map={"": device})
    return model


def _load_mxfp4(folder: Path, config: object, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    """Build the model unquantized, then fill it from the safetensors, dequantizing the experts."""
    config = copy.deepcopy(config)
    del config.quantization_config  # type: ignore[attr-defined]
    with torch.device(device):
        model: PreTrainedModel = AutoModelForCausalLM.from_config(config, dtype=dtype)
    params = dict(model.named_parameters())
    missing = set(params)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError("no .safetensors files")
    for file in files:
        with safe_open(str(file), framework="pt", device=str(device)) as f:
            names = set(f.keys())
            for name in sorted(names):
                if name.endswith("_scales"):
                    continue
                if name.endswith("_blocks"):
                    target = name.removesuffix("_blocks")
                    scales = f.get_tensor(target + "_scales")
                    value = mxfp4_to_expert_param(f.get_tensor(name), scales, dtype)
                else:
                    target, value = name, f.get_tensor(name)
                if target not in params:
                    raise KeyError(f"unexpected tensor {name}")
                param = params[target]
                if param.shape != value.shape:
                    raise ValueError(f"{name}: shape {tuple(value.shape)}, model wants {tuple(param.shape)}")
                with torch.no_grad():
                    param.copy_(value)
                missing.discard(target)
                del value
    if embeddings_tied(model):
        missing.discard("lm_head.weight")
    if missing:
        raise KeyError(f"tensors missing from the folder: {sorted(missing)[:5]}")
    return model.eval()


def embeddings_tied(model: PreTrainedModel) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def _stop_token_ids(folder: Path, model: PreTrainedModel) -> list[int]:
    try:
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
    except OSError:
        eos = model.config.eos_token_id
    if eos is None:
        return []
    return [eos] if isinstance(eos, int) else list(eos)
