"""Pick the launch settings (`moe_kernels.TILES`) of the decode-shaped expert kernels on this GPU.

    PYTHONPATH=engine python3 bench/engine/tune_kernels.py [--budget-s 200] [--kinds mx_f16 ...] [--tokens 2200]

For each kernel (dense bf16, MXFP4 with x in bf16 and in f16 on the tensor cores and on the CUDA
cores, MXFP4 transposed) at the decode row tile (16), every
candidate in the grid below is timed at gpt-oss-20b's two expert shapes (gate_up and down, 8
tokens x 4 experts routed at random, as in bench_kernels.py) by replays of a CUDA graph
(`timing.graph_us`: the kernels alone; timing each call with its launch misranked settings,
bench/RESULTS.md); the pick minimizes their summed median time. A candidate that fails to compile (too much shared memory) or to match the
reference is skipped. Prints one JSON object: the current and the best settings with their
times. `bench_step.py --tune` runs this first and uses the picks for its run.

With `--tokens` above the decode's 8 (prefill and training: 600 and 2 200 tokens in the seed step)
it tunes the many-row tiles instead (`TILES[kind, "many"]`, candidates `MANY_ROWS`). The grids
include the kernels' options: `K_STAGES`, `X_PAIRS` and a register cap (`maxnreg`) for `mx_gemv`,
`SPLIT_X` and `W_AS_A` for many-row `mx` (`moe_kernels.TILES`). The many-row grids keep `ROW_TILES`
on (through the engine it took the seed's update 0.496 -> 0.427 s, bench/RESULTS.md).
The tuner's output can be given to `explore_memory.py --tiles` to run the seed step with its picks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import torch
import torch.nn.functional as F

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast import moe_kernels
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import graph_us, rel_err

GRID: dict[str, list[dict[str, int]]] = {
    kind: [
        dict(BLOCK_M=16, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s)
        for n, k, w, s in itertools.product([32, 64, 128], [128, 256], [4, 8], [3, 4])
    ]
    for kind in ("dense", "mx")
}
GRID["mx_f16"] = [
    dict(BLOCK_M=16, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s)
    for n, k, w, s in itertools.product([32, 64, 128], [64, 128, 256], [2, 4, 8], [2, 3, 4, 5])
]
GRID["mx_gemv"] = [  # the options at the present tile first (`maxnreg` 128: 4 programs an SM, not 3)
    dict(BLOCK_N=32, BLOCK_K=1024, K_STAGES=s, X_PAIRS=x, num_warps=4, **r)
    for r, s, x in itertools.product([{}, {"maxnreg": 128}], [1, 2, 3], [1, 0])
] + [  # then the tiles around it
    dict(BLOCK_N=n, BLOCK_K=k, K_STAGES=s, X_PAIRS=1, num_warps=w)
    for n, k, w, s in itertools.product([32, 16, 64], [1024, 512], [4, 8], [1, 2])
    if (n, k, w) != (32, 1024, 4)
]
GRID["mx_t"] = [
    dict(BLOCK_M=16, BLOCK_C=c, BLOCK_R=r, num_warps=w, num_stages=3) for c, r, w in itertools.product([64, 128], [32, 64, 128], [4, 8])
]
MANY_ROWS: dict[str, list[dict[str, int]]] = {
    "dense": [
        dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s)
        for m, n, k, w, s in itertools.product([64, 128], [64, 128, 256], [64, 128], [4, 8], [3, 4])
    ],
    # first what no run had timed by 2026-12-08: 256-row tiles and 32-column steps (8 warps: no
    # spilled registers in the loop, `kernel_spills.py`), then the grid of 2026-12-06
    "mx": [
        dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, ROW_TILES=1, SPLIT_X=0, W_AS_A=a, num_warps=8, num_stages=3)
        for m, n, k, a in [*itertools.product([256], [64, 128], [32, 64], [0, 1]), (128, 128, 32, 0), (128, 128, 32, 1)]
    ]
    + [
        dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=64, ROW_TILES=1, SPLIT_X=x, W_AS_A=a, num_warps=w, num_stages=3)
        for a, x, w, m, n in itertools.product([1, 0], [1, 0], [8, 4], [128, 64], [128, 256])
    ],
}
MANY_ROWS["mx_t"] = [  # the same: 256-row tiles first, and 128 rows with 8 warps (out of time on 12-06)
    dict(BLOCK_M=m, BLOCK_C=c, BLOCK_R=r, ROW_TILES=1, num_warps=8, num_stages=3)
    for m, c, r in [*itertools.product([256], [64, 128], [32, 64]), (128, 128, 64), (128, 128, 32)]
] + [
    dict(BLOCK_M=m, BLOCK_C=c, BLOCK_R=r, ROW_TILES=1, num_warps=w, num_stages=s)
    for m, c, r, w, s in itertools.product([64, 128], [64, 128, 256], [32, 64], [4, 8], [3, 4])
]


def problems(gen: torch.Generator, tokens: int = TOKENS) -> dict[str, list[tuple[Any, torch.Tensor]]]:
    """Per kernel, one (call, expected result) per expert shape."""
    out: dict[str, list[tuple[Any, torch.Tensor]]] = {"dense": [], "mx": [], "mx_f16": [], "mx_t": []}
    out["mx_gemv"] = out["mx_f16"]  # the same calls, which take the CUDA-core kernel when it is on
    for out_features, in_features in SHAPES.values():
        groups = (EXPERTS, out_features, in_features // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        weight = dequantize(blocks, scales, torch.bfloat16)  # [E, out, in]
        dense = weight.transpose(1, 2).contiguous()
        offsets, _ = routing(gen, tokens)
        x = torch.randn(tokens * TOP_K, in_features, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(tokens * TOP_K, out_features, device="cuda", dtype=torch.bfloat16)
        want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
        out["dense"].append((lambda x=x, o=offsets, w=dense: moe_kernels.grouped_linear(x, o, weight=w), want))
        out["mx"].append(
            (lambda x=x, o=offsets, b=blocks, s=scales: moe_kernels.grouped_linear(x, o, blocks=b, scales=s), want)
        )
        out["mx_f16"].append(
            (
                lambda x=x.half(), o=offsets, b=blocks, s=scales: moe_kernels.grouped_linear(
                    x, o, blocks=b, scales=s, out_dtype=torch.bfloat16
                ),
                want,
            )
        )
        want_t = F.grouped_mm(dy, weight, offs=offsets)
        out["mx_t"].append((lambda d=dy, o=offsets, b=blocks, s=scales: moe_kernels.grouped_linear_t(d, o, b, s), want_t))
    return out


def measure(calls: list[tuple[Any, torch.Tensor]]) -> float:
    """Summed median microseconds over the shapes; inf if a result is wrong."""
    total = 0.0
    for call, want in calls:
        if rel_err(call(), want) > 1e-2:
            return float("inf")
        total += graph_us(call)
    return total


def tune(budget_s: float = 200.0, kinds: list[str] | None = None, tokens: int = TOKENS) -> dict[str, Any]:
    """Times the grid (until the budget runs out), sets `moe_kernels.TILES` to the picks and
    returns what it measured. `kinds`: only these kernels (default all); `tokens`: routed tokens
    (4 rows each), which pick the row tile tuned."""
    gen = torch.Generator().manual_seed(0)
    calls = problems(gen, tokens)
    rows = moe_kernels._row_class(tokens * TOP_K, EXPERTS)
    grid = GRID if rows == "decode" else MANY_ROWS
    deadline = time.monotonic() + budget_s
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(), "tokens": tokens, "rows": rows}
    gemv_rows = moe_kernels.GEMV_ROWS_PER_EXPERT
    for kind, candidates in grid.items():
        if kinds and kind not in kinds:
            continue
        key = (kind, rows)
        # mx_f16 and mx_gemv share the problem (x in f16, 32 rows); the tensor-core kernel takes it
        # only when the CUDA-core one is off
        moe_kernels.GEMV_ROWS_PER_EXPERT = 0 if kind == "mx_f16" else gemv_rows
        current = dict(moe_kernels.TILES[key])
        best, best_us = current, measure(calls[kind])
        report[kind] = {"current": current, "current_us": round(best_us, 1), "tried": 1, "failed": 0}
        timed: list[tuple[float, dict[str, int]]] = []
        for tiles in candidates:
            if time.monotonic() > deadline:
                report[kind]["out_of_time"] = True
                break
            moe_kernels.TILES[key] = tiles
            try:
                us = measure(calls[kind])
            except Exception:  # noqa: BLE001 - a setting that does not compile is skipped
                us = float("inf")
            report[kind]["tried"] += 1
            report[kind]["failed"] += us == float("inf")
            timed.append((us, tiles))
            if us < best_us:
                best, best_us = tiles, us
        moe_kernels.TILES[key] = best
        report[kind].update(best=best, best_us=round(best_us, 1))
        report[kind]["fastest"] = [dict(us=round(us, 1), **t) for us, t in sorted(timed, key=lambda x: x[0])[:6]]
    moe_kernels.GEMV_ROWS_PER_EXPERT = gemv_rows
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--kinds", nargs="*", choices=sorted(GRID), help="only these kernels (default: all)")
    parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens routed, 4 rows each (default: decode's 8)")
    args = parser.parse_args()
    print(json.dumps(tune(args.budget_s, args.kinds, args.tokens), indent=1))
