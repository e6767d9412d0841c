"""Exploration: the fp8-conversion decode product made exact for every scale.

Unpacking as in explore_fp8cvt.py (commit 95ad279): e2m1 -> e4m3 bytes (value times 2^-6), then
Hopper's e4m3x2 -> f16x2 conversion. To keep f16 in range for any checkpoint, each weight row's
scales are taken relative to a reference r: the f16 weights are scaled by 2^(s - r) (exact for
s - r in -14..0) and the float32 result by 2^(r - 121).
- `step`: r is the row's largest scale in the loop step (BLOCK_K / 32 groups); each step's dot
  starts from zero and is added to the accumulator times the row's factor.
- `rowref`: r is the row's largest scale over all K, computed beforehand (`scales.amax(-1)`), one
  factor at the end.
x: f16 given (`X16`), or bf16 converted in the kernel. CUDA-graph timed against the product as it is."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from explore_fp8cvt import _to_e4m3, graph_us
from rl2048_engine.fast.moe_kernels import _expert_rows, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import rel_err


@triton.jit
def _kernel(x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr, ref_ptr, K: tl.constexpr, N: tl.constexpr,
            stride_xm, stride_om, STEP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    w_rows = e * N + cols
    GROUPS: tl.constexpr = BLOCK_K // 32
    m0, end = _expert_rows(offsets_ptr, e)
    if not STEP:
        ref = tl.load(ref_ptr + w_rows, mask=col_ok, other=0).to(tl.int32)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        g = tl.arange(0, GROUPS)
        s_next = tl.load(scales_ptr + w_rows[:, None] * (K // 32) + g[None, :], mask=col_ok[:, None], other=0)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & (k < K)[None, :], other=0.0)
            x = x.to(tl.float16)
            s = s_next.to(tl.int32)
            g = (k0 + BLOCK_K) // 32 + tl.arange(0, GROUPS)
            s_next = tl.load(scales_ptr + w_rows[:, None] * (K // 32) + g[None, :], mask=col_ok[:, None] & (g < K // 32)[None, :], other=0)
            g = k0 // 32 + tl.arange(0, GROUPS)
            ok = col_ok[:, None] & (g < K // 32)[None, :]
            packed = tl.load(blocks_ptr + (w_rows[:, None] * (K // 32) + g[None, :])[:, :, None] * 16 + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)
            lo, hi = _to_e4m3(packed)
            if STEP:
                r = tl.max(s, axis=1)
            else:
                r = ref
            d = s - r[:, None]
            scale = tl.where(d >= -14, (d + 15) << 10, 0).to(tl.uint16).to(tl.float16, bitcast=True)[:, :, None]
            shape: tl.constexpr = (BLOCK_N, BLOCK_K // 2)
            w_even = tl.reshape(lo.to(tl.float8e4nv, bitcast=True).to(tl.float16) * scale, shape)
            w_odd = tl.reshape(hi.to(tl.float8e4nv, bitcast=True).to(tl.float16) * scale, shape)
            x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
            if STEP:
                part = tl.dot(x_even, tl.trans(w_even))
                part = tl.dot(x_odd, tl.trans(w_odd), part)
                factor = (tl.minimum(tl.maximum(r + 6, 1), 254) << 23).to(tl.float32, bitcast=True)
                acc += part * factor[None, :]
            else:
                acc = tl.dot(x_even, tl.trans(w_even), acc)
                acc = tl.dot(x_odd, tl.trans(w_odd), acc)
        if not STEP:
            acc = acc * (tl.minimum(tl.maximum(ref + 6, 1), 254) << 23).to(tl.float32, bitcast=True)[None, :]
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


def product(x, offsets, blocks, scales, ref, n, k, step, bn=64, bk=128, w=4, st=3):  # type: ignore
    out = torch.empty((x.shape[0], n), dtype=torch.bfloat16, device=x.device)
    _kernel[(EXPERTS, triton.cdiv(n, bn))](
        x, out, offsets, blocks, scales, ref, k, n, x.stride(0), out.stride(0),
        STEP=step, BLOCK_M=16, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=st,
    )  # fmt: skip
    return out


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    totals: dict[str, float] = {}
    for name, (n, k) in SHAPES.items():
        groups = (EXPERTS, n, k // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        for label, lo_s, hi_s in (("", 118, 131), ("wide_", 60, 200)):
            scales = torch.randint(lo_s, hi_s, groups, dtype=torch.uint8, device="cuda")
            ref = scales.amax(-1).contiguous()
            weight = dequantize(blocks, scales, torch.float32)
            offsets, _ = routing(gen)
            x = torch.randn(TOKENS * TOP_K, k, device="cuda", dtype=torch.bfloat16)
            want = F.grouped_mm(x.float(), weight.transpose(1, 2), offs=offsets)
            x16 = x.half()
            runs = {
                "current": lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales),
                "step_x16": lambda: product(x16, offsets, blocks, scales, ref, n, k, True),
                "step_xbf16": lambda: product(x, offsets, blocks, scales, ref, n, k, True),
                "step_x16_bk256_bn32": lambda: product(x16, offsets, blocks, scales, ref, n, k, True, 32, 256),
                "step_x16_st4": lambda: product(x16, offsets, blocks, scales, ref, n, k, True, st=4),
                "rowref_x16": lambda: product(x16, offsets, blocks, scales, ref, n, k, False),
                "rowref_xbf16": lambda: product(x, offsets, blocks, scales, ref, n, k, False),
            }
            for run, fn in runs.items():
                try:
                    got = fn().float()
                    if label:  # the wide scales: compare each row with its own largest value
                        report[f"{name}_{label}{run}_err"] = float(((got - want).abs().amax(1) / want.abs().amax(1).clamp_min(1e-30)).max())
                        continue
                    report[f"{name}_{run}_err"] = rel_err(got, want)
                    us = graph_us(fn)
                except Exception as err:  # noqa: BLE001
                    report[f"{name}_{label}{run}_error"] = repr(err)[:300]
                    us = float("inf")
                report[f"{name}_{run}_us"] = round(us, 1)
                totals[run] = totals.get(run, 0.0) + us
    report["totals_us"] = {r: round(t, 1) for r, t in sorted(totals.items(), key=lambda kv: kv[1])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
