"""Exploration: layouts of the fp8-path MXFP4 decode product (`moe_kernels._grouped_kernel`, F16).

Variants, each CUDA-graph timed at gpt-oss-20b's gate_up and down (bench_kernels.py's routing)
and checked against dequantize + grouped_mm in float32:
- `current`: `grouped_linear` with x in f16 (weights the dot's B operand, x its A);
- `swap`: the weights as the A operand, `out^T = W x^T` (BLOCK_N weight rows are the MMA's M, the
  16 input rows its N), so on Hopper the unpacked weights can feed the MMA from registers;
- `presplit`: x given with its even columns first, then its odd ones, as a producer could write it;
- `splitK`: K cut in SPLIT parts, one program each, float32 atomic adds (output zeroed first).

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_swapab.py [--ncu]

`--ncu` runs each variant once at gate_up (for `ncu`) instead of timing."""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast.moe_kernels import _clamped, _compiled, _expert_rows, _mx_scales, _mx_tile_f16, _pow2, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import graph_us, rel_err


@triton.jit
def _kernel(x_ptr, out_ptr, offsets_ptr, w_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
            SWAP: tl.constexpr, PRESPLIT: tl.constexpr, SPLIT: tl.constexpr, CHUNK: tl.constexpr, ASM: tl.constexpr,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    k_start = tl.program_id(2) * CHUNK  # CHUNK: whole loop steps
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        if SWAP:
            acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        else:
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, k_start // 32, BLOCK_K // 32, K)
        for step in range(0, CHUNK, BLOCK_K):  # steps past K are masked
            k0 = k_start + step
            s = s_next
            s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, (k0 + BLOCK_K) // 32, BLOCK_K // 32, K)
            if PRESPLIT:
                h = k0 // 2 + tl.arange(0, BLOCK_K // 2)
                h_ok = row_ok[:, None] & (h < K // 2)[None, :]
                x_even = tl.load(x_ptr + rows[:, None] * stride_xm + h[None, :], mask=h_ok, other=0.0)
                x_odd = tl.load(x_ptr + rows[:, None] * stride_xm + K // 2 + h[None, :], mask=h_ok, other=0.0)
            else:
                k = k0 + tl.arange(0, BLOCK_K)
                x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & (k < K)[None, :], other=0.0)
                x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
            s = _clamped(s)
            r = tl.max(s, axis=1)
            w_even, w_odd = _mx_tile_f16(w_ptr, s - r[:, None], e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, ASM)
            if SWAP:
                part = tl.dot(w_even, tl.trans(x_even))
                part = tl.dot(w_odd, tl.trans(x_odd), part)
                acc += part * _pow2(r - 121)[:, None]
            else:
                part = tl.dot(x_even, tl.trans(w_even))
                part = tl.dot(x_odd, tl.trans(w_odd), part)
                acc += part * _pow2(r - 121)[None, :]
        if SWAP:
            result = tl.trans(acc)
        else:
            result = acc
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        if SPLIT > 1:
            tl.atomic_add(out, result, mask=row_ok[:, None] & col_ok[None, :], sem="relaxed")
        else:
            tl.store(out, result.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


def product(x, offsets, blocks, scales, swap=False, presplit=False, split=1, bn=64, bk=128, w=4, st=3):  # type: ignore
    n, k = blocks.shape[1], blocks.shape[2] * 32
    if split > 1:
        out = torch.zeros((x.shape[0], n), dtype=torch.float32, device=x.device)
    else:
        out = torch.empty((x.shape[0], n), dtype=torch.bfloat16, device=x.device)
    _kernel[(blocks.shape[0], triton.cdiv(n, bn), split)](
        x, out, offsets, blocks, scales, k, n, x.stride(0), out.stride(0),
        SWAP=swap, PRESPLIT=presplit, SPLIT=split, CHUNK=triton.cdiv(triton.cdiv(k, bk), split) * bk, ASM=_compiled(), BLOCK_M=16, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=st,
    )  # fmt: skip
    return out


def variants(x16, xsplit, offsets, blocks, scales):  # type: ignore
    return {
        "current": lambda: grouped_linear(x16, offsets, blocks=blocks, scales=scales, out_dtype=torch.bfloat16),
        "same": lambda: product(x16, offsets, blocks, scales),
        "swap": lambda: product(x16, offsets, blocks, scales, swap=True),
        "swap_w8": lambda: product(x16, offsets, blocks, scales, swap=True, w=8),
        "swap_bn128": lambda: product(x16, offsets, blocks, scales, swap=True, bn=128),
        "swap_bn128_w8": lambda: product(x16, offsets, blocks, scales, swap=True, bn=128, w=8),
        "swap_bk256": lambda: product(x16, offsets, blocks, scales, swap=True, bk=256),
        "swap_st4": lambda: product(x16, offsets, blocks, scales, swap=True, st=4),
        "swap_presplit": lambda: product(xsplit, offsets, blocks, scales, swap=True, presplit=True),
        "presplit": lambda: product(xsplit, offsets, blocks, scales, presplit=True),
        "split2": lambda: product(x16, offsets, blocks, scales, split=2),
        "split3": lambda: product(x16, offsets, blocks, scales, split=3),
        "swap_split2": lambda: product(x16, offsets, blocks, scales, swap=True, split=2),
        "swap_split3": lambda: product(x16, offsets, blocks, scales, swap=True, split=3),
    }


def main() -> None:
    ncu = "--ncu" in sys.argv
    gen = torch.Generator().manual_seed(0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name(), "triton": triton.__version__}
    totals: dict[str, float] = {}
    for name, (n, k) in SHAPES.items():
        groups = (EXPERTS, n, k // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        offsets, routed = routing(gen)
        report[f"{name}_routed"] = routed
        x = torch.randn(TOKENS * TOP_K, k, device="cuda", dtype=torch.bfloat16)
        want = F.grouped_mm(x.float(), dequantize(blocks, scales, torch.float32).transpose(1, 2), offs=offsets)
        x16 = x.half()
        xsplit = torch.cat([x16[:, 0::2], x16[:, 1::2]], dim=1).contiguous()
        for run, fn in variants(x16, xsplit, offsets, blocks, scales).items():
            try:
                got = fn()
                if ncu:
                    continue
                report[f"{name}_{run}_err"] = rel_err(got, want)
                us = graph_us(fn)
            except Exception as err:  # noqa: BLE001
                report[f"{name}_{run}_error"] = repr(err)[:300]
                us = float("inf")
            report[f"{name}_{run}_us"] = round(us, 1)
            totals[run] = totals.get(run, 0.0) + us
        if ncu:
            torch.cuda.synchronize()
            return
    report["totals_us"] = {r: round(t, 1) for r, t in sorted(totals.items(), key=lambda kv: kv[1])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
