"""Where one decode step of the fast generator spends its GPU time, by kernel.

    PYTHONPATH=engine python3 bench/engine/profile_decode.py [--folder /tmp/bench7/gpt-oss-20b-mxfp4]

Loads the folder as bench_step.py does (bf16, LoRA r4 on q/k/v/o, folded), generates 8 x 24 tokens
without the CUDA graph under torch.profiler, takes away a 1-token call (the prefill), and prints
one JSON object: the kernels' GPU time per decode step, the number of kernels per step, and the top kernels by time, each with its
count per step and its share. (Without the graph each kernel's GPU time is the same; what the
graph removes is the host's launch time.)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_step import LORA
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.loading import load_model
from rl2048_engine.params import LoadParams
from rl2048_engine.sampling import SamplingSettings

ROWS, PROMPT_LEN, TOKENS = 8, 150, 24


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench7/gpt-oss-20b-mxfp4"))
    folder = parser.parse_args().folder
    loaded = load_model(LoadParams(model=str(folder), dtype="bfloat16", seed=0, lora=LORA))  # type: ignore[arg-type]
    generator = FastGenerator(loaded.causal_lm, use_graph=False, fold_lora=True)  # as the engine runs bf16
    prompts = [[(7 * i + j) % 1000 + 10 for j in range(PROMPT_LEN)] for i in range(ROWS)]
    settings = SamplingSettings(temperature=1.0)

    def kernels(tokens: int) -> dict[str, list[float]]:
        """Kernel name -> [count, GPU microseconds] for one generate call of `tokens` tokens."""
        gen = torch.Generator(device=loaded.device).manual_seed(0)
        generator.generate(prompts, 1, tokens, settings, [], gen)  # warm-up
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            generator.generate(prompts, 1, tokens, settings, [], gen)
            torch.cuda.synchronize()
        out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for event in prof.events():
            if event.device_type.name == "CUDA":
                out[event.name[:90]][0] += 1
                out[event.name[:90]][1] += event.device_time
        return out

    # Decode steps alone: a call of TOKENS tokens minus a call of 1 (the prefill and its sample).
    long, short = kernels(TOKENS), kernels(1)
    steps = TOKENS - 1
    per_kernel = {
        name: [n - short.get(name, [0, 0.0])[0], us - short.get(name, [0, 0.0])[1]] for name, (n, us) in long.items()
    }
    total_us = sum(us for _, us in per_kernel.values())
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:30]
    print(json.dumps({
        "device": torch.cuda.get_device_name(),
        "gpu_us_per_step": round(total_us / steps, 1),
        "kernels_per_step": round(sum(n for n, _ in per_kernel.values()) / steps, 1),
        "top": [
            {"kernel": k, "per_step": round(n / steps, 2), "us_per_step": round(us / steps, 1), "share": round(us / total_us, 3)}
            for k, (n, us) in top
        ],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
