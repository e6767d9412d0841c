"""bench/engine/bench_step.py (issue 7's benchmark) runs its CPU dry run (`--preset tiny`) to the
end, with and without `--skip-bf16`, and its checks of our fast paths against the plain way hold
on the tiny model. The timings themselves mean nothing on a CPU: only that they are there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("skip_bf16", [False, True])
def test_bench_step_dry_run_reports_every_phase(tmp_path: Path, skip_bf16: bool) -> None:
    command = [sys.executable, str(ROOT / "bench/engine/bench_step.py"), "--preset", "tiny", "--work", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'engine'}{os.pathsep}{ROOT / 'bench/engine'}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, "--out", str(tmp_path), *(["--skip-bf16"] if skip_bf16 else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "bench_step.json").read_text())

    ways = ["plain", "ours-mxfp4"] if skip_bf16 else ["plain", "ours", "ours-mxfp4"]
    assert sorted(result["peak_gib"]) == sorted(ways)
    for phases in (result["plain"], result["mxfp4"]):
        assert set(phases) == {"generate", "logprobs", "train"} and all(s > 0 for s in phases.values())
    checks = result["checks"]
    # MXFP4 mode against the bf16 model's logprobs of the same completions (ours, or the plain way's)
    assert checks["mxfp4_vs_bf16_logprobs_mean_abs"] < 0.01
    assert checks["mxfp4_sampling_vs_logprobs_mean_abs"] < 0.01
    if skip_bf16:
        assert result["ours"] is None and "grad_norm_rel_diff" not in checks
    else:
        assert set(result["ours"]) == {"generate", "logprobs", "train"}
        assert checks["sampling_vs_plain_mean_abs"] < 0.01
        assert checks["grad_norm_rel_diff"] < 0.01
        assert checks["grad_norm_shared_vs_whole_rows_rel_diff"] < 0.01
        assert checks["logprobs_shared_vs_whole_rows_mean_abs"] < 0.001
