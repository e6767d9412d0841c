"""Exploration: launch settings (registers, warps, stages) of the MXFP4 decode kernels, CUDA-graph timed."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from explore_diag import graph_us
from rl2048_engine.fast import moe_kernels
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import rel_err

BASE = {"mx": dict(BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3), "mx_t": dict(BLOCK_C=128, BLOCK_R=128, num_warps=4, num_stages=3)}
VARIANTS = {
    "mx": [{}, dict(maxnreg=96), dict(maxnreg=80), dict(maxnreg=64), dict(num_stages=2), dict(num_stages=2, maxnreg=80),
           dict(BLOCK_N=32), dict(BLOCK_N=32, maxnreg=80), dict(BLOCK_N=128, num_warps=8), dict(BLOCK_N=128, num_warps=8, maxnreg=80),
           dict(BLOCK_K=256, BLOCK_N=32), dict(BLOCK_K=256, BLOCK_N=32, maxnreg=96)],
    "mx_t": [{}, dict(maxnreg=96), dict(maxnreg=80), dict(num_stages=2), dict(BLOCK_R=64), dict(BLOCK_R=64, maxnreg=80)],
}


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    totals: dict[str, float] = {}
    for name, (n, k) in SHAPES.items():
        groups = (EXPERTS, n, k // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        weight = dequantize(blocks, scales, torch.bfloat16)
        offsets, _ = routing(gen)
        x = torch.randn(TOKENS * TOP_K, k, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(TOKENS * TOP_K, n, device="cuda", dtype=torch.bfloat16)
        calls = {
            "mx": (lambda: moe_kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales), F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)),
            "mx_t": (lambda: moe_kernels.grouped_linear_t(dy, offsets, blocks, scales), F.grouped_mm(dy, weight, offs=offsets)),
        }
        for kind, (fn, want) in calls.items():
            for change in VARIANTS[kind]:
                label = kind + ":" + ",".join(f"{a}={b}" for a, b in change.items())
                moe_kernels.TILES[kind, 16] = {**BASE[kind], **change}
                try:
                    err = rel_err(fn(), want)
                    us = graph_us(fn) if err < 1e-2 else float("inf")
                except Exception as e:  # noqa: BLE001
                    report[f"{name}_{label}_error"] = repr(e)[:200]
                    us = float("inf")
                report[f"{name}_{label}_us"] = round(us, 1)
                totals[label] = totals.get(label, 0.0) + us
            moe_kernels.TILES[kind, 16] = BASE[kind]
    report["totals_us"] = {r: round(t, 1) for r, t in sorted(totals.items(), key=lambda kv: kv[1])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
