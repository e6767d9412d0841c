"""Exploration: the MXFP4 decode product with x given already split into even and odd columns
(each BLOCK_K chunk as [its 64 even | its 64 odd columns]), so the kernel does no register
shuffles on x. CUDA-graph timed against the product as it is."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast.moe_kernels import _expert_rows, _mx_scales, _mx_tile, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import rel_err


@triton.jit
def _split_x_kernel(x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr,
                    stride_xm, stride_om, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, 0, BLOCK_K // 32, K)
        for k0 in range(0, K, BLOCK_K):
            h = k0 + tl.arange(0, BLOCK_K // 2)
            ok = row_ok[:, None] & (h < K)[None, :]  # K is a multiple of BLOCK_K here
            x_even = tl.load(x_ptr + rows[:, None] * stride_xm + h[None, :], mask=ok, other=0.0)
            x_odd = tl.load(x_ptr + rows[:, None] * stride_xm + BLOCK_K // 2 + h[None, :], mask=ok, other=0.0)
            s = s_next
            s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, (k0 + BLOCK_K) // 32, BLOCK_K // 32, K)
            w_even, w_odd = _mx_tile(blocks_ptr, s, e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, True)
            acc = tl.dot(x_even, tl.trans(w_even).to(x_even.dtype), acc)
            acc = tl.dot(x_odd, tl.trans(w_odd).to(x_even.dtype), acc)
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


def split_x(x: torch.Tensor, block_k: int) -> torch.Tensor:
    """Columns of each BLOCK_K chunk as [even | odd] (K padded up to a multiple of BLOCK_K)."""
    rows, k = x.shape
    padded = -(-k // block_k) * block_k
    x = F.pad(x, (0, padded - k))
    return x.view(rows, padded // block_k, block_k // 2, 2).transpose(-1, -2).reshape(rows, padded).contiguous()


def split_product(x_split, offsets, blocks, scales, n, k, bn=64, bk=128, w=4, st=3):  # type: ignore
    out = torch.empty((x_split.shape[0], n), dtype=x_split.dtype, device=x_split.device)
    _split_x_kernel[(EXPERTS, triton.cdiv(n, bn))](
        x_split, out, offsets, blocks, scales, k, n, x_split.stride(0), out.stride(0),
        BLOCK_M=16, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=st,
    )  # fmt: skip
    return out


def graph_us(fn, calls: int = 20) -> float:  # type: ignore[no-untyped-def]
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    times = []
    for _ in range(7):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / calls)
    return sorted(times)[3]


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
        want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
        xs = split_x(x, 128)
        runs = {
            "current": lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales),
            "x_split": lambda: split_product(xs, offsets, blocks, scales, n, k),
            "x_split_st4": lambda: split_product(xs, offsets, blocks, scales, n, k, st=4),
            "split_x_itself": lambda: split_x(x, 128),
        }
        for run, fn in runs.items():
            if run != "split_x_itself":
                report[f"{name}_{run}_err"] = rel_err(fn(), want)
            us = graph_us(fn)
            report[f"{name}_{run}_us"] = round(us, 1)
            totals[run] = totals.get(run, 0.0) + us
    report["totals_us"] = {r: round(t, 1) for r, t in sorted(totals.items(), key=lambda kv: kv[1])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
