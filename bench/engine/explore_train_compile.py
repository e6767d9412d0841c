"""Exploration: the GRPO update (and logprobs) with each decoder layer compiled, MXFP4 mode.

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_train_compile.py [--work /tmp/bench7]

The update is host-bound (10 401 kernels, bench/RESULTS.md): this times `train_step_fused` on the
seed's shapes (8 x (150 + 200) tokens) with transformers' layers as they are, then with every
decoder layer through `torch.compile(dynamic=True)`; learning rate 0, so every update starts from
the same weights and the gradient norms compare. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_step import load_mxfp4_mode, step_params
from rl2048_engine.init_model import init_model
from rl2048_engine.fast.training import UpdateGraphs, train_step_fused
from rl2048_engine.logprobs import make_batch, token_logprobs
from rl2048_engine.optim import make_optimizer, make_scheduler
from rl2048_engine.params import OptimParams
from rl2048_engine.training import Trainer


def wall(fn, n=3):
    out = []
    for _ in range(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(round(time.perf_counter() - t, 4))
    return out


def gpu_profile(fn):
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return {"kernels": len(events), "gpu_ms": round(sum(e.device_time for e in events) / 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench7"))
    parser.add_argument("--variants", default="eager,graphs", help="eager, compiled (each layer), graphs (UpdateGraphs)")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    folder = args.work / "gpt-oss-20b-mxfp4"
    if not folder.exists():
        t = time.perf_counter()
        init_model(folder, "20b", mxfp4=True)
        print(json.dumps({"init_model_s": round(time.perf_counter() - t, 1)}), flush=True)
    device = torch.device("cuda")
    loaded = load_mxfp4_mode(folder, device)
    optim = OptimParams(lr=0.0)
    optimizer, _ = make_optimizer(loaded.trainable, optim, device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, optim), 1.0)
    rng = random.Random(0)
    pairs = [([rng.randrange(199_998) for _ in range(150)], [rng.randrange(199_998) for _ in range(200)]) for _ in range(8)]
    params = step_params(pairs, [[-5.0] * 200 for _ in pairs])
    batch = make_batch(pairs, device)

    def logprobs():
        with torch.no_grad():
            return token_logprobs(loaded.causal_lm, batch)[0]

    for variant in args.variants.split(","):
        graphs = UpdateGraphs() if variant == "graphs" else None
        if variant == "compiled":
            for layer in loaded.causal_lm.get_decoder().layers:
                layer.compile(dynamic=True)
        torch.cuda.reset_peak_memory_stats()
        first = wall(lambda: train_step_fused(trainer, params, graphs), 2 if graphs else 1)
        metrics = train_step_fused(trainer, params, graphs)
        train = wall(lambda: train_step_fused(trainer, params, graphs))
        lp_first = wall(logprobs, 1)
        lp = wall(logprobs)
        row = {
            "variant": variant,
            "train_first_s": first,
            "train_s": train,
            "grad_norm": metrics["grad_norm"],
            "loss": metrics["loss"],
            "logprobs_first_s": lp_first,
            "logprobs_s": lp,
            "logprobs_mean": float(logprobs().mean()),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 2),
            "reserved_gib": round(torch.cuda.memory_reserved() / 1024**3, 2),
            "train_profile": gpu_profile(lambda: train_step_fused(trainer, params, graphs)),
            "logprobs_profile": gpu_profile(logprobs),
        }
        print(json.dumps(row), flush=True)
        if args.cprofile:
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                train_step_fused(trainer, params, graphs)
                torch.cuda.synchronize()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            with profile(activities=[ProfilerActivity.CPU]) as tprof:
                train_step_fused(trainer, params, graphs)
                torch.cuda.synchronize()
            print(tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
