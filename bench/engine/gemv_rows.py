"""Where the CUDA-core MXFP4 product stops paying (`moe_kernels.GEMV_ROWS_PER_EXPERT`): gate_up +
down (gpt-oss-20b, 32 experts, top 4, x in f16) at growing decode batches, on the CUDA cores
against the tensor cores, CUDA-graph timed.

    PYTHONPATH=engine:bench/engine python3 bench/engine/gemv_rows.py
"""

from __future__ import annotations

import json

import torch

from bench_kernels import EXPERTS, SHAPES, TOP_K, routing
from rl2048_engine.fast import moe_kernels
from timing import graph_us


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = []
    for out_f, in_f in SHAPES.values():
        groups = (EXPERTS, out_f, in_f // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, generator=gen).cuda()
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, generator=gen).cuda()
        weights.append((blocks, scales, in_f))
    report = {"device": torch.cuda.get_device_name(), "rows": {}}
    for tokens in (8, 12, 16, 24, 32, 48, 64):
        offsets, _ = routing(gen, tokens)
        times = {}
        for label, limit in (("cuda_cores", 10**6), ("tensor_cores", 0)):
            moe_kernels.GEMV_ROWS_PER_EXPERT = limit
            total = 0.0
            for blocks, scales, in_f in weights:
                x = torch.randn(tokens * TOP_K, in_f, generator=gen).half().cuda()
                call = lambda: moe_kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales, out_dtype=torch.bfloat16)  # noqa: E731
                total += graph_us(call)
            times[label] = round(total, 1)
        report["rows"][tokens * TOP_K] = times
        print(tokens * TOP_K, times, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
