"""Checkpoints (adapter or weights + optimizer + scheduler + RNG) and the three exports.

`save` writes into a folder the caller chose (it renames a temp folder afterwards):
- checkpoint:   the PEFT adapter (or model.safetensors for full fine-tuning), optimizer.pt,
                scheduler.pt, rng_state.pt, engine_state.json
- lora:         the PEFT adapter folder (`PeftModel.from_pretrained` loads it)
- merged_16bit: a transformers folder with the adapter merged in, 16-bit weights
- mxfp4:        the same for gpt-oss, with the MoE experts packed back to MXFP4 (mxfp4.py)
The merged weights are built tensor by tensor (base + LoRA delta), so the live model is never
modified and training can go on after an export.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import save_torch_state_dict
from peft import PeftModel, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer, ParamWrapper
from safetensors.torch import load_file, save_file

from .errors import EngineError
from .loading import LoadedModel, embeddings_tied
from .mxfp4 import expert_param_to_mxfp4
from .training import Trainer

STATE_FILE = "engine_state.json"
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt")
EXPERT_PARAMS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def save(trainer: Trainer, generator: torch.Generator, path: Path, fmt: str) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise EngineError("bad_request", f"{path}: the folder is not empty")
    if fmt == "checkpoint":
        _save_checkpoint(trainer, generator, path)
    elif fmt == "lora":
        _save_adapter(trainer.loaded, path)
    else:
        _save_merged(trainer.loaded, path, mxfp4=fmt == "mxfp4")
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def load_state(trainer: Trainer, generator: torch.Generator, path: Path) -> int:
    loaded = trainer.loaded
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise EngineError("bad_request", f"{path}: not a checkpoint (no {STATE_FILE})")
    if loaded.has_lora:
        adapter = path / "adapter_model.safetensors"
        if not adapter.is_file():
            raise EngineError("bad_request", f"{path}: the checkpoint has no adapter_model.safetensors")
        result = set_peft_model_state_dict(loaded.model, load_file(str(adapter), device=str(loaded.device)))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise EngineError("bad_request", f"{path}: adapter does not fit the model: {unexpected[:3]}")
    elif (path / "model.safetensors").is_file():
        loaded.causal_lm.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    if trainer.optimizer is not None and trainer.scheduler is not None:
        trainer.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=loaded.device))
        trainer.scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    _set_rng_state(torch.load(path / "rng_state.pt", weights_only=False), generator)
    trainer.step = int(json.loads(state_file.read_text())["step"])
    return trainer.step


def merged_state_dict(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    """The model's weights under their transformers names, LoRA deltas added, on the CPU."""
    deltas: dict[str, torch.Tensor] = {}
    for name, module in loaded.causal_lm.named_modules():
        if not isinstance(module, LoraLayer) or not module.active_adapters:
            continue
        param = module.parameter_name if isinstance(module, ParamWrapper) else "weight"
        key = _clean(f"{name}.{param}")
        for adapter in module.active_adapters:
            delta = module.get_delta_weight(adapter).detach()  # type: ignore[attr-defined]
            deltas[key] = deltas[key] + delta if key in deltas else delta
    state: dict[str, torch.Tensor] = {}
    for raw, value in loaded.causal_lm.state_dict().items():
        if "lora_" in raw:
            continue
        key = _clean(raw)
        value = value.detach()
        if key in deltas:
            value = (value.float() + deltas.pop(key).float()).to(value.dtype)
        state[key] = _on_cpu(value)
    if deltas:
        raise EngineError("internal", f"LoRA deltas without a base weight: {sorted(deltas)[:3]}")
    return state


def _on_cpu(t: torch.Tensor) -> torch.Tensor:
    """`t` on the CPU, contiguous, in memory of its own: the fast generator may have moved q, k and
    v into one tensor (`fast.forward.stacked_projection`), and safetensors refuses to save views
    into a larger storage."""
    t = t.detach().contiguous().to("cpu")
    return t if t.untyped_storage().nbytes() == t.numel() * t.element_size() else t.clone()


def _clean(name: str) -> str:
    return name.replace(".base_layer", "")


def _save_adapter(loaded: LoadedModel, path: Path) -> None:
    if not isinstance(loaded.model, PeftModel):
        raise EngineError("bad_request", "no LoRA adapter loaded: export merged_16bit instead")
    loaded.model.save_pretrained(str(path))


def _save_merged(loaded: LoadedModel, path: Path, mxfp4: bool) -> None:
    config = loaded.causal_lm.config
    if mxfp4 and config.model_type != "gpt_oss":
        raise EngineError("bad_request", f"mxfp4 export is for gpt-oss models, this one is {config.model_type}")
    state = merged_state_dict(loaded)
    dtype = _sixteen_bit(loaded)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    if mxfp4:
        for key in [k for k in state if k.endswith(EXPERT_PARAMS)]:
            blocks, scales = expert_param_to_mxfp4(state.pop(key))
            state[f"{key}_blocks"], state[f"{key}_scales"] = blocks, scales
    save_torch_state_dict(state, str(path), max_shard_size="5GB")

    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["dtype"] = str(dtype).removeprefix("torch.")
    if mxfp4:
        config_dict["quantization_config"] = _mxfp4_quantization_config(loaded)
    (path / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
    for file in loaded.folder.iterdir():  # tokenizer, chat template, generation config, ...
        if file.is_file() and file.name != "config.json" and not file.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(file, path / file.name)


def _sixteen_bit(loaded: LoadedModel) -> torch.dtype:
    return loaded.dtype if loaded.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16


def _mxfp4_quantization_config(loaded: LoadedModel) -> dict[str, Any]:
    source = json.loads((loaded.folder / "config.json").read_text()).get("quantization_config")
    if isinstance(source, dict) and source.get("quant_method") == "mxfp4":
        return source
    return {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }


def _save_checkpoint(trainer: Trainer, generator: torch.Generator, path: Path) -> None:
    loaded = trainer.loaded
    if isinstance(loaded.model, PeftModel):
        loaded.model.save_pretrained(str(path))
    elif loaded.trainable:
        state = {k: _on_cpu(v) for k, v in loaded.causal_lm.state_dict().items()}
        if "lm_head.weight" in state and embeddings_tied(loaded.causal_lm):
            del state["lm_head.weight"]
        save_file(state, str(path / "model.safetensors"))
    if trainer.optimizer is not None and trainer.scheduler is not None:
        torch.save(trainer.optimizer.state_dict(), path / "optimizer.pt")
        torch.save(trainer.scheduler.state_dict(), path / "scheduler.pt")
    torch.save(_rng_state(generator), path / "rng_state.pt")
    (path / STATE_FILE).write_text(json.dumps({"step": trainer.step, "model": str(loaded.folder)}) + "\n")


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["generator"])
