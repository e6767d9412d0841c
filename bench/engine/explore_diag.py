"""Exploration: why the MXFP4 decode product runs at ~1.3 TB/s. Asm stats and graph-timed variants."""

from __future__ import annotations

import json
import re
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast import moe_kernels
from rl2048_engine.fast.moe_kernels import _expert_rows, _mx_scales, _mx_tile, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import rel_err


@triton.jit
def _variant_kernel(x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr,
                    stride_xm, stride_om, MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr):  # fmt: skip
    """MODE 0: loads only (sum of bytes); 1: unpack, no dot (sum); 2: full (as the product)."""
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    m0, end = _expert_rows(offsets_ptr, e)
    if m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc1 = tl.zeros((BLOCK_N, BLOCK_K // 2), dtype=tl.float32)
        acci = tl.zeros((BLOCK_N, BLOCK_K // 32, 16), dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            if MODE == 0:
                g = k0 // 32 + tl.arange(0, BLOCK_K // 32)
                ok = col_ok[:, None] & (g < K // 32)[None, :]
                group = (e * N + cols)[:, None] * (K // 32) + g[None, :]
                packed = tl.load(blocks_ptr + group[:, :, None] * 16 + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)
                acci += packed.to(tl.int32)
            elif MODE == 1:
                w_even, w_odd = _mx_tile(blocks_ptr, _mx_scales(scales_ptr, e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K), e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, True)
                acc1 += w_even.to(tl.float32) + w_odd.to(tl.float32)
            else:
                x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & (k < K)[None, :], other=0.0)
                w_even, w_odd = _mx_tile(blocks_ptr, _mx_scales(scales_ptr, e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K), e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, True)
                x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
                acc = tl.dot(x_even, tl.trans(w_even).to(x.dtype), acc)
                acc = tl.dot(x_odd, tl.trans(w_odd).to(x.dtype), acc)
        if MODE == 0:
            acc += tl.sum(tl.sum(acci, 2), 1).to(tl.float32)[None, :]
        elif MODE == 1:
            acc += tl.sum(acc1, 1)[None, :]
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def variant(mode, x, offsets, blocks, scales, n, k, bn=64, bk=128, w=4, st=3):  # type: ignore
    out = torch.zeros((x.shape[0], n), dtype=x.dtype, device=x.device)
    _variant_kernel[(EXPERTS, triton.cdiv(n, bn))](
        x, out, offsets, blocks, scales, k, n, x.stride(0), out.stride(0), MODE=mode, BLOCK_M=16, BLOCK_N=bn,
        BLOCK_K=bk, num_warps=w, num_stages=st,
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


def asm_stats(kernel) -> dict:  # type: ignore[no-untyped-def]
    out = {"n_regs": kernel.n_regs, "n_spills": kernel.n_spills, "shared": kernel.metadata.shared}
    ptx = kernel.asm["ptx"]
    for pat in ["cp.async", "ld.global", "ld.global.v4", "mma.sync", "wgmma", "ldmatrix", "st.shared", "ld.shared", "prmt", "bar.sync", "cvt"]:
        out[pat] = len(re.findall(re.escape(pat), ptx))
    return out


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    for name, (n, k) in SHAPES.items():
        groups = (EXPERTS, n, k // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        weight = dequantize(blocks, scales, torch.bfloat16)
        offsets, routed = routing(gen)
        x = torch.randn(TOKENS * TOP_K, k, device="cuda", dtype=torch.bfloat16)
        want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
        packed_mb = routed * n * (k // 2 + k // 32) / 1e6
        report[f"{name}_packed_mb"] = round(packed_mb, 1)
        runs = {
            "current": lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales),
            "loads": lambda: variant(0, x, offsets, blocks, scales, n, k),
            "unpack": lambda: variant(1, x, offsets, blocks, scales, n, k),
            "full": lambda: variant(2, x, offsets, blocks, scales, n, k),
            "loads_bk256": lambda: variant(0, x, offsets, blocks, scales, n, k, 32, 256),
            "unpack_w8": lambda: variant(1, x, offsets, blocks, scales, n, k, 64, 128, 8),
            "full_st4": lambda: variant(2, x, offsets, blocks, scales, n, k, 64, 128, 4, 4),
        }
        if only:
            for _ in range(3):
                runs[only]()
            torch.cuda.synchronize()
            continue
        report[f"{name}_full_err"] = rel_err(runs["full"](), want)
        for run, fn in runs.items():
            us = graph_us(fn)
            report[f"{name}_{run}_us"] = round(us, 1)
            report[f"{name}_{run}_tb_s"] = round(packed_mb / us, 2)
        if name == "gate_up":
            for label, fn in (("current", moe_kernels._grouped_kernel), ("variants", _variant_kernel)):
                try:
                    caches = [v[0] for v in fn.device_caches.values()]
                    report[f"{label}_asm"] = [asm_stats(kern) for c in caches for kern in c.values()]
                except Exception as err:  # noqa: BLE001
                    report[f"{label}_asm"] = repr(err)
    if not only:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
