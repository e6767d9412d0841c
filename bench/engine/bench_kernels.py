"""The MXFP4 expert kernels alone, at gpt-oss-20b's shapes, on random packed weights.

    PYTHONPATH=engine python3 bench/engine/bench_kernels.py [--tokens 8 2800]

32 experts; gate_up `[5760, 2880]` and down `[2880, 2880]` (out, in); blocks random bytes, scales
random in 118..130. Each `--tokens` count (default 8, the decode shape) routes that many tokens
to 4 distinct experts each (rows sorted by expert; the seed's update is about 2 800 tokens, 11 200
rows, its prefill 600).
Times (CUDA events, median of 20 after warm-up, microseconds): the MXFP4 decode kernel
(`grouped_linear`, `mx`; `mx_f16` with x in f16, its fp8 path) and its transpose (`grouped_linear_t`, `mx_t`) for both projections; for reference the
dense bf16 kernel and `F.grouped_mm` on the dequantized weights, and the way prefill and training
ran before 2026-12-06, `dequantize_experts` of all 32 experts then `F.grouped_mm`
(`dequantized_grouped_mm`, and `_t` for the transposed product); `dequantize_experts` of all 32 experts of gate_up alone (and the
PyTorch table lookup). Each MXFP4 result is checked against
dequantize + matmul (relative error). Bandwidths: packed bytes (blocks and scales) of the routed
experts read by the decode kernels, bf16 bytes written by the dequantization. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
import triton

from rl2048_engine.fast.moe_kernels import dequantize_experts, grouped_linear, grouped_linear_t
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import median_us, rel_err  # bench/engine/timing.py

EXPERTS, TOKENS, TOP_K = 32, 8, 4
SHAPES = {"gate_up": (5760, 2880), "down": (2880, 2880)}  # (out, in)


def routing(gen: torch.Generator, tokens: int = TOKENS) -> tuple[torch.Tensor, int]:
    """Cumulative row ends per expert for `tokens` tokens routed to TOP_K distinct experts each,
    and how many experts got rows."""
    ids = torch.stack([torch.randperm(EXPERTS, generator=gen)[:TOP_K] for _ in range(tokens)]).flatten()
    counts = torch.bincount(ids, minlength=EXPERTS)
    return counts.cumsum(0).to(torch.int32).cuda(), int((counts > 0).sum())


def bench(name: str, out_features: int, in_features: int, tokens: int, gen: torch.Generator, result: dict[str, object]) -> None:
    groups = (EXPERTS, out_features, in_features // 32)
    blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
    scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
    weight = dequantize(blocks, scales, torch.bfloat16)  # [E, out, in]
    dense = weight.transpose(1, 2).contiguous()  # [E, in, out], as transformers stores the experts
    offsets, routed = routing(gen, tokens)
    rows = tokens * TOP_K
    every = torch.arange(EXPERTS, device="cuda")
    x = torch.randn(rows, in_features, device="cuda", dtype=torch.bfloat16)
    dy = torch.randn(rows, out_features, device="cuda", dtype=torch.bfloat16)
    x16 = x.half()  # the fp8 path's input

    want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
    want_t = F.grouped_mm(dy, weight, offs=offsets)
    packed = routed * out_features * (in_features // 2 + in_features // 32)  # bytes the decode kernels read
    runs = {
        "mx": lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales),
        "mx_f16": lambda: grouped_linear(x16, offsets, blocks=blocks, scales=scales, out_dtype=torch.bfloat16),
        "mx_t": lambda: grouped_linear_t(dy, offsets, blocks, scales),
        "dense": lambda: grouped_linear(x, offsets, weight=dense),
        "grouped_mm": lambda: F.grouped_mm(x, weight.transpose(1, 2), offs=offsets),
        "grouped_mm_t": lambda: F.grouped_mm(dy, weight, offs=offsets),
        "dequantized_grouped_mm": lambda: F.grouped_mm(
            x, dequantize_experts(blocks, scales, every, torch.bfloat16).transpose(1, 2), offs=offsets
        ),
        "dequantized_grouped_mm_t": lambda: F.grouped_mm(
            dy, dequantize_experts(blocks, scales, every, torch.bfloat16), offs=offsets
        ),
    }
    result[f"{name}_routed_experts"] = routed
    result[f"{name}_mx_rel_err"] = rel_err(runs["mx"](), want)
    result[f"{name}_mx_f16_rel_err"] = rel_err(runs["mx_f16"](), want)
    result[f"{name}_mx_t_rel_err"] = rel_err(runs["mx_t"](), want_t)
    result[f"{name}_dense_rel_err"] = rel_err(runs["dense"](), want)
    for run, fn in runs.items():
        us = median_us(fn)
        result[f"{name}_{run}_us"] = round(us, 1)
        if run.startswith("mx") and tokens == TOKENS:
            result[f"{name}_{run}_packed_tb_s"] = round(packed / us / 1e6, 3)

    if name == "gate_up" and tokens == TOKENS:
        result["dequantize_exact"] = bool(
            torch.equal(dequantize_experts(blocks, scales, every, torch.bfloat16), weight)
        )
        us = median_us(lambda: dequantize_experts(blocks, scales, every, torch.bfloat16))
        result["dequantize_gate_up_all_us"] = round(us, 1)
        result["dequantize_gate_up_written_tb_s"] = round(EXPERTS * out_features * in_features * 2 / us / 1e6, 3)
        us = median_us(lambda: dequantize(blocks, scales, torch.bfloat16), 5)
        result["torch_dequantize_gate_up_all_us"] = round(us, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs="+", default=[TOKENS], help="tokens routed (4 rows each)")
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)  # routing
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
    }
    for tokens in args.tokens:
        part: dict[str, object] = {}
        for name, (out_features, in_features) in SHAPES.items():
            bench(name, out_features, in_features, tokens, gen, part)
            torch.cuda.empty_cache()
        result.update(part if tokens == TOKENS else {f"{k}@{tokens}": v for k, v in part.items()})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
