"""Exploration: where the host's time goes in the MXFP4-mode GRPO update (bench_step's train phase).

The update's wall time (0.35-0.43 s on the H200) exceeds its GPU time (278 ms): the host issues
10 401 kernels. Reports, for one `train_step_fused` after a warm-up: wall seconds (3 runs), the
CPU ops by self time (count, ms), the CUDA runtime calls, and every line of ours or the libraries'
that waits on the device (`torch.cuda.set_sync_debug_mode("warn")`), with its count.

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_train_host.py /tmp/bench7/gpt-oss-20b-mxfp4
"""

from __future__ import annotations

import collections
import json
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_step import NEW_TOKENS, load_mxfp4_mode, step_params
from rl2048_engine.fast.training import train_step_fused
from rl2048_engine.optim import make_optimizer, make_scheduler
from rl2048_engine.params import OptimParams
from rl2048_engine.training import Trainer


def main() -> None:
    loaded = load_mxfp4_mode(Path(sys.argv[1]), torch.device("cuda"))
    optim = OptimParams(lr=5e-5)
    optimizer, _ = make_optimizer(loaded.trainable, optim, loaded.device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, optim), 1.0)
    prompts = [[(7 * i + j) % 1000 + 10 for j in range(150)] for i in range(8)]
    pairs = [(p, [(3 * i + j) % 1000 + 10 for j in range(NEW_TOKENS)]) for i, p in enumerate(prompts)]
    params = step_params(pairs, [[-1.0] * NEW_TOKENS for _ in pairs])
    step = lambda: train_step_fused(trainer, params)  # noqa: E731
    step()
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    walls = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        walls.append(round(time.perf_counter() - start, 4))
    report["wall_s"] = walls

    syncs: collections.Counter[str] = collections.Counter()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step()
    torch.cuda.set_sync_debug_mode(0)
    for w in caught:
        syncs[f"{w.filename}:{w.lineno}: {str(w.message)[:80]}"] += 1
    report["syncs"] = dict(syncs.most_common(30))

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    ops: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.key_averages():
        if e.device_type.name == "CPU":
            ops[e.key][0] += e.count
            ops[e.key][1] += e.self_cpu_time_total / 1000
    top = sorted(ops.items(), key=lambda kv: -kv[1][1])[:45]
    report["cpu_ops_by_self_ms"] = [{"op": k[:80], "count": n, "self_ms": round(ms, 2)} for k, (n, ms) in top]
    report["cpu_self_ms_total"] = round(sum(ms for _, ms in ops.values()), 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise
