"""Checkpoints round-trip; the exports load in plain PEFT / transformers to the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import ATTENTION_LORA, EXPERT_LORA, PROMPTS, Call, make_call
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from rl2048_engine.engine import Engine
from rl2048_engine.fast.forward import GptOssRunner
from rl2048_engine.loading import load_model
from rl2048_engine.mxfp4 import expert_param_to_mxfp4, mxfp4_to_expert_param
from rl2048_engine.params import LoadParams
from rl2048_engine.saving import merged_state_dict

IDS = torch.tensor([PROMPTS[0] + [40, 41, 42, 43]])
OPTIM = {"lr": 2e-2, "schedule": "linear", "warmup_steps": 1, "total_steps": 10}


def trained_engine(folder: Path, lora: dict | None = ATTENTION_LORA, steps: int = 2, dtype: str = "float32"):
    engine = Engine()
    call = make_call(engine)
    call("load", model=str(folder), dtype=dtype, device="cpu", lora=lora, optim=OPTIM)
    for _ in range(steps):
        train(call)
    return engine, call


def train(call: Call) -> dict:
    items = [{"prompt": PROMPTS[0], "completion": [40, 41, 42, 43], "advantage": 1.0}]
    return call("train_step", items=items)


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


def test_checkpoint_round_trip_restores_adapter_optimizer_and_schedule(tiny_folder: Path, tmp_path: Path) -> None:
    engine, call = trained_engine(tiny_folder, steps=1)
    saved = call("save", path=str(tmp_path / "ck"), format="checkpoint")
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt", "rng_state.pt"} <= set(
        saved["files"]
    )
    second = train(call)
    weights = {k: v.clone() for k, v in engine.loaded.model.named_parameters() if v.requires_grad}
    train(call)  # move on, so the restore has something to undo

    assert call("load_state", path=str(tmp_path / "ck")) == {"step": 1}
    again = train(call)
    assert again == second  # same loss, grad norm, learning rate (scheduler), step
    for name, value in engine.loaded.model.named_parameters():
        if value.requires_grad:
            assert torch.equal(value, weights[name]), name  # Adam moments restored too


def test_checkpoint_into_a_fresh_engine(tiny_folder: Path, tmp_path: Path) -> None:
    engine, call = trained_engine(tiny_folder)
    call("save", path=str(tmp_path / "ck"), format="checkpoint")
    fresh = Engine()
    fresh_call = make_call(fresh)
    fresh_call("load", model=str(tiny_folder), dtype="float32", device="cpu", lora=ATTENTION_LORA, optim=OPTIM)
    assert fresh_call("load_state", path=str(tmp_path / "ck")) == {"step": 2}
    assert torch.equal(logits(fresh.loaded.model), logits(engine.loaded.model))
    assert train(fresh_call) == train(call)


def test_lora_export_loads_in_plain_peft_with_the_same_logits(tiny_folder: Path, tmp_path: Path) -> None:
    engine, call = trained_engine(tiny_folder)
    call("save", path=str(tmp_path / "lora"), format="lora")
    base = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float32)
    base_logits = logits(base)
    peft_model = PeftModel.from_pretrained(base, tmp_path / "lora").eval()
    ours = logits(engine.loaded.model)
    assert (ours - base_logits).abs().max() > 1e-3  # training moved the model
    torch.testing.assert_close(logits(peft_model), ours, rtol=0, atol=1e-5)


@pytest.mark.parametrize("stacked", [False, True])
def test_merged_16bit_loads_in_plain_transformers_with_the_same_logits(
    tiny_folder: Path, tmp_path: Path, stacked: bool
) -> None:
    engine, call = trained_engine(tiny_folder, steps=4, dtype="bfloat16")
    if stacked:  # as the MXFP4-mode fast generator leaves them: q, k and v rows of one tensor
        GptOssRunner(engine.loaded.causal_lm)
    call("save", path=str(tmp_path / "merged"), format="merged_16bit")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.bfloat16).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.bfloat16).eval()
    ours = logits(engine.loaded.model)
    error = (logits(merged) - ours).abs().max()
    moved = (logits(base) - ours).abs().max()
    assert error < 0.03 and error < moved / 5, (error, moved)
    assert next(merged.parameters()).dtype == torch.bfloat16
    assert (tmp_path / "merged" / "tokenizer.json").is_file()


def test_mxfp4_export_reloads_to_the_same_weights(tiny_mxfp4_folder: Path, tmp_path: Path) -> None:
    engine, call = trained_engine(tiny_mxfp4_folder, lora=None, steps=0, dtype="bfloat16")
    call("save", path=str(tmp_path / "mx"), format="mxfp4")
    assert _tensor_layout(tmp_path / "mx") == _tensor_layout(tiny_mxfp4_folder)  # names, shapes, dtypes
    reloaded = load_model(LoadParams(model=str(tmp_path / "mx"), device="cpu")).causal_lm.state_dict()
    original = engine.loaded.causal_lm.state_dict()
    assert reloaded.keys() == original.keys()
    for name, value in original.items():
        assert torch.equal(reloaded[name], value), name


def test_mxfp4_export_after_expert_lora_packs_the_merged_experts(tiny_mxfp4_folder: Path, tmp_path: Path) -> None:
    engine, call = trained_engine(tiny_mxfp4_folder, lora=EXPERT_LORA, dtype="bfloat16")
    call("save", path=str(tmp_path / "mx"), format="mxfp4")
    merged = merged_state_dict(engine.loaded)
    reloaded = load_model(LoadParams(model=str(tmp_path / "mx"), device="cpu")).causal_lm.state_dict()
    name = "model.layers.0.mlp.experts.down_proj"
    assert torch.equal(reloaded[name], mxfp4_to_expert_param(*expert_param_to_mxfp4(merged[name])))
    assert torch.equal(
        reloaded["model.layers.0.self_attn.q_proj.weight"], merged["model.layers.0.self_attn.q_proj.weight"]
    )
    base = load_model(LoadParams(model=str(tiny_mxfp4_folder), device="cpu")).causal_lm.state_dict()
    assert not torch.equal(reloaded[name], base[name])  # the expert LoRA made it into the export


def _tensor_layout(folder: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    layout = {}
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                tensor = f.get_tensor(key)
                layout[key] = (tuple(tensor.shape), tensor.dtype)
    return layout
