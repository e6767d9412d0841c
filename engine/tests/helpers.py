"""Helpers shared by the engine tests: calling methods through the request handler."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rl2048_engine.engine import Engine
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


ATTENTION_LORA = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
EXPERT_LORA = {**ATTENTION_LORA, "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}
PROMPTS = [[5, 17, 301, 42, 9], [700, 12, 8]]
