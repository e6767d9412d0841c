"""Exploration: the MXFP4 decode product on pre-tiled packed weights (each step one contiguous block).

Times are CUDA-graph replays of 20 calls (no host launch in the figure)."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast.moe_kernels import TILES, _e2m1_pairs, _expert_rows, _scale_bf16, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import rel_err

TILE_N, TILE_G = 64, 2  # a tile: 64 weight rows x 2 groups (64 columns, 32 bytes a row): 2 KB


@triton.jit
def _tiled_kernel(
    x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, TILE_N: tl.constexpr, TILE_G: tl.constexpr,
):  # fmt: skip
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    GROUPS: tl.constexpr = BLOCK_K // 32
    KB: tl.constexpr = K // 32 // TILE_G
    NB: tl.constexpr = N // TILE_N
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & (k < K)[None, :], other=0.0)
            g = k0 // 32 + tl.arange(0, GROUPS)
            ok = col_ok[:, None] & (g < K // 32)[None, :]
            s = tl.load(scales_ptr + (e * N + cols[:, None]) * (K // 32) + g[None, :], mask=ok, other=127)
            tile = (e * NB + cols // TILE_N)[:, None] * KB + (g // TILE_G)[None, :]  # [BN, G]
            byte0 = (tile * TILE_N + (cols % TILE_N)[:, None]) * (TILE_G * 16) + (g % TILE_G)[None, :] * 16
            packed = tl.load(blocks_ptr + byte0[:, :, None] + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)
            scale = _scale_bf16(s)[:, :, None]
            low, high = _e2m1_pairs(packed)
            shape: tl.constexpr = (BLOCK_N, BLOCK_K // 2)
            w_even, w_odd = tl.reshape(low * scale, shape), tl.reshape(high * scale, shape)
            x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
            acc = tl.dot(x_even, tl.trans(w_even).to(x.dtype), acc)
            acc = tl.dot(x_odd, tl.trans(w_odd).to(x.dtype), acc)
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


def tile_blocks(blocks: torch.Tensor) -> torch.Tensor:
    e, n, groups, _ = blocks.shape
    b = blocks.view(e, n // TILE_N, TILE_N, groups // TILE_G, TILE_G * 16)
    return b.permute(0, 1, 3, 2, 4).contiguous()


def tiled(x, offsets, tiled_blocks, scales, n, k, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3):  # type: ignore
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    grid = (EXPERTS, triton.cdiv(n, BLOCK_N))
    _tiled_kernel[grid](
        x, out, offsets, tiled_blocks, scales, k, n, x.stride(0), out.stride(0),
        BLOCK_M=16, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, TILE_N=TILE_N, TILE_G=TILE_G, num_warps=num_warps, num_stages=num_stages,
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
        offsets, routed = routing(gen)
        x = torch.randn(TOKENS * TOP_K, k, device="cuda", dtype=torch.bfloat16)
        want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
        tb = tile_blocks(blocks)
        runs = {"current": lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales)}
        for bn, bk, w, st in [(64, 64, 4, 3), (64, 64, 4, 4), (128, 64, 4, 3), (32, 64, 4, 3), (64, 64, 2, 3), (32, 128, 4, 3)]:
            def untiled(bn=bn, bk=bk, w=w, st=st):  # type: ignore[no-untyped-def]
                TILES["mx", 16] = dict(BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=st)
                try:
                    return grouped_linear(x, offsets, blocks=blocks, scales=scales)
                finally:
                    TILES["mx", 16] = dict(BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3)
            runs[f"untiled_{bn}_{bk}_{w}_{st}"] = untiled
        for bn, bk, w, st in [(64, 128, 4, 3), (64, 64, 4, 3), (64, 64, 4, 4), (128, 64, 4, 4), (32, 64, 4, 3)]:
            runs[f"tiled_{bn}_{bk}_{w}_{st}"] = lambda bn=bn, bk=bk, w=w, st=st: tiled(x, offsets, tb, scales, n, k, bn, bk, w, st)
        for run, fn in runs.items():
            report[f"{name}_{run}_err"] = rel_err(fn(), want)
            us = graph_us(fn)
            report[f"{name}_{run}_us"] = round(us, 1)
            totals[run] = totals.get(run, 0.0) + us
        report[f"{name}_packed_mb"] = round(routed * n * (k // 2 + k // 32) / 1e6, 1)
    report["totals_us"] = {r: round(t, 1) for r, t in sorted(totals.items(), key=lambda kv: kv[1])}
    report["tiles_current"] = TILES["mx", 16]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
