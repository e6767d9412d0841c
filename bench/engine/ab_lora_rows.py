"""MXFP4 generate (8 x 200 tokens, as bench_step.py) with each adapter's x @ A.T out of its
projection's GEMM (the A rows stacked below the base weight: the engine since commit 8e45b13)
against x @ A.T as a multiply-sum of its own (before), alternately in one process.

    PYTHONPATH=engine:bench/engine python bench/engine/ab_lora_rows.py OUT.json [--work /tmp/bench7]

Needs a GPU and the `20b` folder that bench_step.py writes. "Before" is the old `project` and a
`stacked_projection` that cuts the A rows off the stacked weight again. Each way runs three
rounds of two timed calls, after a first call that compiles and captures its graphs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from bench_step import NEW_TOKENS, N, load_mxfp4_mode, seed_prompts
from torch.nn import functional as F

from rl2048_engine.fast import forward
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.sampling import SamplingSettings

NEW_PROJECT, NEW_STACKED = forward.project, forward.stacked_projection


def old_project(x: torch.Tensor, p: forward.Proj) -> list[torch.Tensor]:
    """Before: the base GEMM, then every adapter's x @ A.T and @ B.T as multiply-sums."""
    y = F.linear(x, p.weight, p.bias)
    outs = y.split(list(p.sizes), dim=-1) if p.sizes else (y,)
    result = []
    for out, lora in zip(outs, p.loras or ((),) * len(outs)):
        for a, b, scale in lora:
            u = (x.to(a.dtype).unsqueeze(-2) * a).sum(-1)
            out = out + (u.unsqueeze(-2) * b).sum(-1) * scale
        result.append(out.to(x.dtype))
    return result


def old_stacked(linears: tuple[torch.nn.Module, ...]) -> forward.Proj:
    """The stacked projection without its A rows (a view of the base rows)."""
    p = NEW_STACKED(linears)
    if not p.a_rows:
        return p
    keep = p.weight.shape[0] - p.a_rows
    return p._replace(weight=p.weight[:keep], bias=None if p.bias is None else p.bias[:keep], a_rows=0)


WAYS = {"A rows in the GEMM": (NEW_PROJECT, NEW_STACKED), "x @ A.T apart": (old_project, old_stacked)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench7"))
    args = parser.parse_args()
    loaded = load_mxfp4_mode(args.work / "gpt-oss-20b-mxfp4", torch.device("cuda"))
    prompts = seed_prompts()
    settings = SamplingSettings(temperature=1.0)
    generators: dict[str, FastGenerator] = {}
    out: dict = {"device": torch.cuda.get_device_name(), "runs": {name: [] for name in WAYS}}

    def generate(name: str) -> None:
        seed = torch.Generator(device="cuda").manual_seed(0)
        generators[name].generate(prompts, N, NEW_TOKENS, settings, [], seed)

    for _ in range(3):
        for name, (project, stacked) in WAYS.items():
            forward.project, forward.stacked_projection = project, stacked
            if name not in generators:
                generators[name] = FastGenerator(loaded.causal_lm)
                generate(name)  # compiles and captures
            generators[name].runner.refresh()
            for _ in range(2):
                torch.cuda.synchronize()
                start = time.perf_counter()
                generate(name)
                torch.cuda.synchronize()
                out["runs"][name].append(round(time.perf_counter() - start, 4))
            out["medians"] = {k: statistics.median(v) for k, v in out["runs"].items() if v}
            print(json.dumps(out), flush=True)
            args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
