"""Helpers shared by the engine tests: calling methods through the request handler, the reference model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, Mxfp4Config, PreTrainedModel

from rl2048_engine.engine import Engine
from rl2048_engine.loading import _quant_method
from rl2048_engine.server import handle_line

Call = Callable[..., dict[str, Any]]


def make_call(engine: Engine) -> Call:
    """Call an engine method through the server's request handler; returns the result, or raises."""

    def call(method: str, **params: Any) -> dict[str, Any]:
        _, _, reply = handle_line(engine, json.dumps({"id": 1, "method": method, "params": params}))
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply["result"]

    return call


def transformers_model(folder: Path, dtype: torch.dtype) -> PreTrainedModel:
    """The folder through plain transformers, as the reference. An MXFP4 folder's experts are asked
    for dequantized: otherwise transformers 5.25+ (which brings the `kernels` package) fetches its
    MXFP4 kernels from the Hugging Face Hub, out of reach here and in CI."""
    mxfp4 = _quant_method(AutoConfig.from_pretrained(folder)) == "mxfp4"
    extra = {"quantization_config": Mxfp4Config(dequantize=True)} if mxfp4 else {}
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra)


ATTENTION_LORA = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
EXPERT_LORA = {**ATTENTION_LORA, "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}
PROMPTS = [[5, 17, 301, 42, 9], [700, 12, 8]]


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """|got - want| / |want| (Frobenius norms, in float32)."""
    return float((got.float() - want.float()).norm() / want.float().norm())
