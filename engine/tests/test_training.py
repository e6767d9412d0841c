"""train_step and sft_step move the model the way the loss says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import ATTENTION_LORA, PROMPTS, Call, make_call

from rl2048_engine.engine import Engine

OPTIM = {"lr": 1e-2, "schedule": "constant", "max_grad_norm": None}


def loaded_engine(folder: Path, **load: object) -> Call:
    call = make_call(Engine())
    params = {"model": str(folder), "dtype": "float32", "device": "cpu", "lora": ATTENTION_LORA, "optim": OPTIM}
    call("load", **{**params, **load})
    return call


def completion(call: Call) -> dict:
    out = call("generate", prompts=PROMPTS[:1], max_new_tokens=6, stop_token_ids=[], seed=0)
    return {"prompt": PROMPTS[0], "completion": out["completions"][0]["ids"]}


def total_logprob(call: Call, item: dict) -> float:
    return sum(call("logprobs", items=[item])["policy"][0])


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_advantage_sign_moves_the_completion_logprob(tiny_folder: Path, advantage: float) -> None:
    call = loaded_engine(tiny_folder)
    item = completion(call)
    before = total_logprob(call, item)
    result = call("train_step", items=[{**item, "advantage": advantage}], loss={"type": "grpo"})
    after = total_logprob(call, item)
    assert (after - before) * advantage > 0.01
    assert result["step"] == 1 and result["grad_norm"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU case is the test below")
def test_train_step_reports_no_memory_without_a_gpu(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder)
    assert call("train_step", items=[{**completion(call), "advantage": 1.0}])["memory"] == {}


@pytest.mark.gpu(reason="GPU memory")
def test_train_step_reports_the_gpu_memory_peaks_since_the_last_report(tiny_folder: Path) -> None:
    # The peaks a report gives start at the previous report: a 512 MiB tensor made and freed
    # before the first update is in the first report's peaks, not in the second's.
    call = loaded_engine(tiny_folder, device="cuda")
    item = {**completion(call), "advantage": 1.0}
    big = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    del big
    first = call("train_step", items=[item])["memory"]
    second = call("train_step", items=[item])["memory"]
    assert first["peak_reserved"] >= first["peak"] >= 512 * 2**20
    assert second["peak"] < first["peak"] - 256 * 2**20
    assert second["reserved"] <= second["peak_reserved"] <= second["total"]


def test_kl_is_zero_before_the_first_update_then_grows(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder)
    item = {**completion(call), "advantage": 1.0}
    first = call("train_step", items=[item], loss={"beta": 0.1})
    second = call("train_step", items=[item], loss={"beta": 0.1})
    assert first["kl"] == pytest.approx(0.0, abs=1e-7)
    assert second["kl"] > 1e-4


def test_masked_truncated_completions_give_no_gradient(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder)
    item = {**completion(call), "advantage": 1.0, "truncated": True}
    masked = call("train_step", items=[item], loss={"mask_truncated_completions": True})
    assert masked["grad_norm"] == 0.0 and masked["loss"] == 0.0
    kept = call("train_step", items=[item], loss={"mask_truncated_completions": False})
    assert kept["grad_norm"] > 0


def test_dapo_gradient_does_not_depend_on_accumulation_steps(tiny_folder: Path) -> None:
    norms = []
    for steps in (1, 2):
        call = loaded_engine(tiny_folder)
        out = call("generate", prompts=PROMPTS, n=2, max_new_tokens=5, stop_token_ids=[], seed=4)
        items = [
            {"prompt": PROMPTS[c["prompt_index"]], "completion": c["ids"], "advantage": (-1.0) ** i}
            for i, c in enumerate(out["completions"])
        ]
        result = call("train_step", items=items, loss={"type": "dapo"}, gradient_accumulation_steps=steps)
        norms.append(result["grad_norm"])
    assert norms[0] == pytest.approx(norms[1], rel=1e-5)


def test_sft_step_lowers_the_loss(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder)
    items = [{"prompt": PROMPTS[0], "completion": [11, 12, 13, 14]}, {"prompt": PROMPTS[1], "completion": [7, 7]}]
    losses = [call("sft_step", items=items, gradient_accumulation_steps=2)["loss"] for _ in range(4)]
    assert losses[-1] < losses[0] - 0.05


def test_a_frozen_model_refuses_to_train(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder, lora=None)
    with pytest.raises(AssertionError, match="frozen"):
        call("sft_step", items=[{"prompt": [1], "completion": [2]}])


def test_full_finetune_trains_every_weight_and_keeps_a_reference(tiny_folder: Path) -> None:
    call = loaded_engine(tiny_folder, lora=None, full_finetune=True)
    item = completion(call)
    result = call("train_step", items=[{**item, "advantage": 1.0}], loss={"beta": 0.1})
    scored = call("logprobs", items=[item], reference=True)
    assert result["kl"] == pytest.approx(0.0, abs=1e-7)
    assert sum(scored["policy"][0]) > sum(scored["reference"][0])
