"""Exploration: launch settings of `moe_kernels._dequantize_kernel` (all 32 experts of gate_up and
of down to bf16, as MXFP4 training runs it). CUDA events, median of 20; bytes read + written per us."""

from __future__ import annotations

import itertools
import json

import torch
import triton

from bench_kernels import EXPERTS, SHAPES
from rl2048_engine.fast.moe_kernels import _dequantize_kernel
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import median_us


def run(blocks, scales, experts, block_r, groups, warps):  # type: ignore[no-untyped-def]
    n, k = blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((experts.shape[0], n, k), dtype=torch.bfloat16, device=blocks.device)
    rows = experts.shape[0] * n
    grid = (triton.cdiv(rows, block_r), triton.cdiv(k // 32, groups))
    _dequantize_kernel[grid](blocks, scales, experts, out, rows, k, n, True, BLOCK_R=block_r, GROUPS=groups, num_warps=warps)
    return out


def main() -> None:
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    every = torch.arange(EXPERTS, device="cuda")
    totals: dict[str, float] = {}
    for name, (n, k) in SHAPES.items():
        groups = (EXPERTS, n, k // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        want = dequantize(blocks, scales, torch.bfloat16)
        moved = blocks.numel() + scales.numel() + want.numel() * 2
        for r, g, w in itertools.product([16, 32, 64, 128], [1, 2, 4, 8], [2, 4, 8]):
            key = f"r{r}_g{g}_w{w}"
            try:
                ok = torch.equal(run(blocks, scales, every, r, g, w), want)
                us = median_us(lambda: run(blocks, scales, every, r, g, w)) if ok else float("inf")
            except Exception as err:  # noqa: BLE001
                report[f"{name}_{key}_error"] = repr(err)[:200]
                us = float("inf")
            totals[key] = totals.get(key, 0.0) + us
            report[f"{name}_{key}_tb_s"] = round(moved / us / 1e6, 2)
    report["totals_us"] = {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: kv[1])[:12]}
    report["current_r64_g4_w4_us"] = round(totals["r64_g4_w4"], 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
