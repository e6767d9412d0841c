"""The real process: JSON lines in and out, typed errors, and the engine stays usable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ENGINE_DIR = Path(__file__).resolve().parents[1]


class EngineProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rl2048_engine"],
            cwd=ENGINE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.next_id = 0

    def send_line(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        return json.loads(reply)  # every stdout line is protocol JSON

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        reply = self.send_line(json.dumps({"id": self.next_id, "method": method, "params": params}))
        assert reply["id"] == self.next_id
        return reply


@pytest.fixture(scope="module")
def engine() -> Any:
    process = EngineProcess()
    yield process
    if process.proc.poll() is None:
        process.proc.kill()


def kind(reply: dict[str, Any]) -> str:
    return reply["error"]["kind"]


def test_errors_are_typed_and_the_engine_stays_usable(engine: EngineProcess, tiny_folder: Path, tmp_path: Path) -> None:
    info = engine.call("info")["result"]
    assert info["protocol"] == 1 and "torch" in info

    assert kind(engine.send_line("this is not json")) == "bad_request"
    assert kind(engine.call("fly")) == "bad_request"
    assert kind(engine.call("generate", prompts=[[1]], max_new_tokens=2)) == "not_loaded"
    assert kind(engine.call("load", model=str(tmp_path / "missing"))) == "model_folder"
    assert kind(engine.call("load", model=str(tiny_folder), dtype="float8")) == "bad_request"

    load = {"model": str(tiny_folder), "dtype": "float32", "device": "cpu", "cpu_threads": 1}
    loaded = engine.call("load", **load, lora={"rank": 2})["result"]
    assert loaded["params_trainable"] > 0 and loaded["stop_token_ids"]

    bad_id = engine.call("generate", prompts=[[1, 10**9]], max_new_tokens=2)
    assert kind(bad_id) == "bad_request" and "outside the vocabulary" in bad_id["error"]["message"]
    assert kind(engine.call("generate", prompts=[[1]], max_new_tokens=2, typo=1)) == "bad_request"
    assert kind(engine.call("load_state", path=str(tmp_path))) == "bad_request"

    out = engine.call("generate", prompts=[[1, 2, 3]], n=2, max_new_tokens=3, seed=0)["result"]
    assert len(out["completions"]) == 2

    assert engine.call("shutdown") == {"id": engine.next_id, "result": {}}
    assert engine.proc.wait(timeout=30) == 0


def test_end_of_input_exits_cleanly() -> None:
    process = EngineProcess()
    assert process.proc.stdin
    process.proc.stdin.close()
    assert process.proc.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}),
        ({"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:64"}, {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:64"}),
        ({"PYTORCH_ALLOC_CONF": "expandable_segments:False"}, {"PYTORCH_ALLOC_CONF": "expandable_segments:False"}),
    ],
)
def test_the_engine_uses_expandable_segments_unless_the_user_set_the_allocator(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], expected: dict[str, str]
) -> None:
    from rl2048_engine import use_expandable_segments

    for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    use_expandable_segments()
    assert {k: v for k, v in os.environ.items() if k.endswith("ALLOC_CONF")} == expected
