"""Where the GPU time goes, by kernel: one decode step of the fast generator, and one GRPO update.

    PYTHONPATH=engine python3 bench/engine/profile_decode.py [--folder /tmp/bench7/gpt-oss-20b-mxfp4] [--mxfp4] [--kl] [--no-train]

Loads the folder as bench_step.py does (bf16, LoRA r4 on q/k/v/o, folded, compiled layer
functions, our experts forward; with --mxfp4 as its MXFP4 mode). Decode: generates 8 x 24 tokens
without the CUDA graph under torch.profiler and takes away a 1-token call (the prefill of the 8
prompts, and one sample), which is reported too. Train: one `train_step_fused` on 4 prompts x 2
completions of 200 tokens (the seed's update; with `--kl`, `compute_kl` on, as the seed preset
runs it; with `--no-train`, not run: it compiles for minutes). Prints one JSON line for decode
and prefill as soon as they are measured, then one for the update: for each, the kernels' GPU
time and number, summed by who wrote them (`family`), and the top kernels by time, each with its
count and its share. (Without the graph each kernel's GPU time is the same; what the graph
removes is the host's launch time.)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from bench_step import LORA, NEW_TOKENS, fast_forward, load_mxfp4_mode, step_params
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.fast.training import train_step_fused
from rl2048_engine.loading import load_model
from rl2048_engine.optim import make_optimizer, make_scheduler
from rl2048_engine.params import LoadParams, OptimParams
from rl2048_engine.sampling import SamplingSettings
from rl2048_engine.training import Trainer

ROWS, PROMPT_LEN, TOKENS = 8, 150, 24
Kernels = dict[str, list[float]]


def kernels(fn: Callable[[], Any]) -> Kernels:
    """Kernel name -> [count, GPU microseconds] for one call of `fn` (after a warm-up call)."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    out: Kernels = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type.name == "CUDA":
            out[event.name[:90]][0] += 1
            out[event.name[:90]][1] += event.device_time
    return out


def family(kernel: str) -> str:
    """Who wrote a kernel: inductor (fused by torch.compile), ours (Triton, `fast/`), a GEMM
    library's (cuBLAS, CUTLASS), or PyTorch's own (elementwise, reductions, copies)."""
    if kernel.startswith("triton_"):
        return "inductor"
    if kernel.startswith("_"):
        return "ours"
    if any(word in kernel for word in ("nvjet", "gemm", "cutlass", "sm90_xmma", "cublas", "flash")):
        return "gemm/attention libraries"
    return "pytorch"


def report(per_kernel: Kernels, per: int, unit: str) -> dict[str, Any]:
    total_us = sum(us for _, us in per_kernel.values())
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:30]
    families: Kernels = defaultdict(lambda: [0, 0.0])
    for name, (n, us) in per_kernel.items():
        totals = families[family(name)]
        totals[0] += n
        totals[1] += us
    return {
        f"gpu_us_per_{unit}": round(total_us / per, 1),
        f"kernels_per_{unit}": round(sum(n for n, _ in per_kernel.values()) / per, 1),
        "families": {k: {"kernels": round(n / per, 1), "us": round(us / per, 1)} for k, (n, us) in families.items()},
        "top": [
            {"kernel": k, f"per_{unit}": round(n / per, 2), f"us_per_{unit}": round(us / per, 1), "share": round(us / total_us, 3)}
            for k, (n, us) in top
        ],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench7/gpt-oss-20b-mxfp4"))
    parser.add_argument("--mxfp4", action="store_true", help="MXFP4-resident experts, as bench_step's MXFP4 mode")
    parser.add_argument("--kl", action="store_true", help="the update with `compute_kl`, as the seed preset runs it")
    parser.add_argument("--no-train", action="store_true", help="decode and prefill only (the update compiles for minutes)")
    args = parser.parse_args()
    optim = OptimParams(lr=5e-5)
    if args.mxfp4:
        loaded = load_mxfp4_mode(args.folder, torch.device("cuda"))
    else:
        loaded = load_model(LoadParams(model=str(args.folder), dtype="bfloat16", seed=0, lora=LORA, optim=optim))  # type: ignore[arg-type]
        fast_forward(loaded, True)
    generator = FastGenerator(loaded.causal_lm, use_graph=False, fold_lora=not args.mxfp4)  # as the engine runs
    prompts = [[(7 * i + j) % 1000 + 10 for j in range(PROMPT_LEN)] for i in range(ROWS)]
    settings = SamplingSettings(temperature=1.0)

    def generate(tokens: int) -> Kernels:
        gen = torch.Generator(device=loaded.device).manual_seed(0)
        return kernels(lambda: generator.generate(prompts, 1, tokens, settings, [], gen))

    # Decode steps alone: a call of TOKENS tokens minus a call of 1 (the prefill and its sample).
    long, short = generate(TOKENS), generate(1)
    decode = {
        name: [n - short.get(name, [0, 0.0])[0], us - short.get(name, [0, 0.0])[1]] for name, (n, us) in long.items()
    }
    print(json.dumps({
        "device": torch.cuda.get_device_name(),
        "decode": report(decode, TOKENS - 1, "step"),
        "prefill": report(short, 1, "call"),  # 8 prompts of PROMPT_LEN tokens, and one sample
    }), flush=True)  # fmt: skip
    if args.no_train:
        return

    optimizer, _ = make_optimizer(loaded.trainable, optim, loaded.device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, optim), 1.0)
    # The seed's batch: 4 prompts x 2 completions (the update holds each prompt once).
    pairs = [(prompts[i // 2], [(3 * i + j) % 1000 + 10 for j in range(NEW_TOKENS)]) for i in range(ROWS)]
    params = step_params(pairs, [[-1.0] * NEW_TOKENS for _ in pairs])
    if args.kl:
        params = params.model_copy(update={"loss": params.loss.model_copy(update={"compute_kl": True})})
    train = kernels(lambda: train_step_fused(trainer, params))
    print(json.dumps({"train": report(train, 1, "update")}), flush=True)


if __name__ == "__main__":
    main()
