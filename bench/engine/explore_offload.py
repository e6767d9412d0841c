"""Exploration: what the offloaded embeddings and the decode product's tiles cost MXFP4 generate.

In MXFP4 mode (bench_step.py's `load_mxfp4_mode`) the embedding table lives in CPU memory. Until
06:41 UTC (2026-11-22) each decode step's `runner.embed(next_ids)` copied the ids to the host (a
sync) and the rows back; since, the GPU reads the rows from pinned memory (`fast.host_rows`). Times `FastGenerator.generate` (8 x 200 tokens, medians of 3) with the table offloaded and
with it moved to the GPU, each with the fp8 path's present tiles and with BLOCK_K 64, 5 stages
(tune_kernels.py's graph-timed pick at 06:35 UTC, 2026-11-22).

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_offload.py /tmp/bench7/gpt-oss-20b-mxfp4
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch

from bench_step import N, NEW_TOKENS, PROMPT_LEN, PROMPTS, load_mxfp4_mode, timed_runs
from rl2048_engine.fast import moe_kernels
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.sampling import SamplingSettings


def main() -> None:
    folder = Path(sys.argv[1])
    device = torch.device("cuda")
    loaded = load_mxfp4_mode(folder, device)
    rng = random.Random(0)
    prompts = [[rng.randrange(1000, 100000) for _ in range(PROMPT_LEN)] for _ in range(PROMPTS)]
    settings = SamplingSettings(temperature=1.0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    tiles = dict(moe_kernels.TILES["mx_f16", 16])
    embedding = loaded.causal_lm.get_input_embeddings()
    for where in ("offloaded", "on_gpu"):
        if where == "on_gpu":
            embedding._forward_pre_hooks.clear()  # the offloading of 06:41 hooked the module
            embedding._forward_hooks.clear()
            if "forward" in vars(embedding):  # since: its own forward, the lookup on the GPU
                del embedding.forward
            embedding.to(device)
        for label, tile in (("tiles_now", tiles), ("bk64_st5", {**tiles, "BLOCK_K": 64, "num_stages": 5})):
            moe_kernels.TILES["mx_f16", 16] = tile
            fast = FastGenerator(loaded.causal_lm)  # a new graph with these tiles
            gen = torch.Generator(device=device).manual_seed(0)
            fast.generate(prompts, N, NEW_TOKENS, settings, [], gen)
            _, seconds, _, runs = timed_runs(lambda: fast.generate(prompts, N, NEW_TOKENS, settings, [], gen))
            report[f"{where}_{label}_s"] = round(seconds, 4)
            report[f"{where}_{label}_runs"] = runs
            print(json.dumps({k: v for k, v in report.items() if k.startswith(where + "_" + label)}), flush=True)
            del fast
            torch.cuda.empty_cache()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
