"""Exploration: MXFP4 decode-kernel variants at gpt-oss-20b shapes (not part of the product yet)."""

from __future__ import annotations

import itertools
import json
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from bench_kernels import EXPERTS, SHAPES, TOKENS, TOP_K, routing
from rl2048_engine.fast.moe_kernels import _e2m1, _expert_rows, _mx_tile, _scale_base, grouped_linear
from rl2048_engine.fast.mxfp4_experts import dequantize
from timing import median_us, rel_err


@triton.jit
def _lut_unpack(packed):  # type: ignore[no-untyped-def]
    """uint8 codes pairs -> (low nibble value, high nibble value) bf16, unscaled, by byte permutes."""
    return tl.inline_asm_elementwise(
        asm="""
        {
        .reg .b32 m, m2, hl, ll, hh, lh, t, u, ta, tb, la, lb;
        mov.b32 ta, 0x3F3F3F00;
        mov.b32 tb, 0x40404040;
        mov.b32 la, 0xC0800000;
        mov.b32 lb, 0xC0804000;
        and.b32 m, $4, 0x77777777;
        shr.u32 m2, m, 16;
        prmt.b32 hl, ta, tb, m;
        prmt.b32 ll, la, lb, m;
        prmt.b32 hh, ta, tb, m2;
        prmt.b32 lh, la, lb, m2;
        prmt.b32 $0, ll, hl, 0x6240;
        prmt.b32 $1, lh, hh, 0x6240;
        prmt.b32 $2, ll, hl, 0x7351;
        prmt.b32 $3, lh, hh, 0x7351;
        shl.b32 t, $4, 4;
        prmt.b32 u, t, 0, 0x1404;
        lop3.b32 $0, $0, u, 0x80008000, 0xF8;
        prmt.b32 u, t, 0, 0x3424;
        lop3.b32 $1, $1, u, 0x80008000, 0xF8;
        prmt.b32 u, $4, 0, 0x1404;
        lop3.b32 $2, $2, u, 0x80008000, 0xF8;
        prmt.b32 u, $4, 0, 0x3424;
        lop3.b32 $3, $3, u, 0x80008000, 0xF8;
        }
        """,
        constraints="=r,=r,=r,=r,r",
        args=[packed],
        dtype=(tl.bfloat16, tl.bfloat16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def _lut_unpack_scaled(packed, scale):  # type: ignore[no-untyped-def]
    """As `_lut_unpack`, each value times `scale` (bf16, the same for the 4 bytes of a pack) by a bf16x2 fma."""
    return tl.inline_asm_elementwise(
        asm="""
        {
        .reg .b32 m, m2, hl, ll, hh, lh, t, u, ta, tb, la, lb, nz;
        mov.b32 ta, 0x3F3F3F00;
        mov.b32 tb, 0x40404040;
        mov.b32 la, 0xC0800000;
        mov.b32 lb, 0xC0804000;
        mov.b32 nz, 0x80008000;
        and.b32 m, $4, 0x77777777;
        shr.u32 m2, m, 16;
        prmt.b32 hl, ta, tb, m;
        prmt.b32 ll, la, lb, m;
        prmt.b32 hh, ta, tb, m2;
        prmt.b32 lh, la, lb, m2;
        prmt.b32 $0, ll, hl, 0x6240;
        prmt.b32 $1, lh, hh, 0x6240;
        prmt.b32 $2, ll, hl, 0x7351;
        prmt.b32 $3, lh, hh, 0x7351;
        shl.b32 t, $4, 4;
        prmt.b32 u, t, 0, 0x1404;
        lop3.b32 $0, $0, u, 0x80008000, 0xF8;
        prmt.b32 u, t, 0, 0x3424;
        lop3.b32 $1, $1, u, 0x80008000, 0xF8;
        prmt.b32 u, $4, 0, 0x1404;
        lop3.b32 $2, $2, u, 0x80008000, 0xF8;
        prmt.b32 u, $4, 0, 0x3424;
        lop3.b32 $3, $3, u, 0x80008000, 0xF8;
        fma.rn.bf16x2 $0, $0, $5, nz;
        fma.rn.bf16x2 $1, $1, $5, nz;
        fma.rn.bf16x2 $2, $2, $5, nz;
        fma.rn.bf16x2 $3, $3, $5, nz;
        }
        """,
        constraints="=r,=r,=r,=r,r,r,r",
        args=[packed, scale],
        dtype=(tl.bfloat16, tl.bfloat16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def _swapped_kernel(
    x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr,
    K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """out^T [BLOCK_N weight rows, BLOCK_M tokens] = W @ x^T: the weight is the dot's left operand."""
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    w_rows = e * N + n
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            if MODE == 0:  # dot_scaled, W e2m1 on the left
                k = k0 + tl.arange(0, BLOCK_K)
                xt = tl.load(x_ptr + rows[None, :] * stride_xm + k[:, None], mask=row_ok[None, :] & (k < K)[:, None], other=0.0)
                kb = k0 // 2 + tl.arange(0, BLOCK_K // 2)
                packed = tl.load(blocks_ptr + w_rows[:, None] * (K // 2) + kb[None, :], mask=n_ok[:, None] & (kb < K // 2)[None, :], other=0)
                g = k0 // 32 + tl.arange(0, BLOCK_K // 32)
                scale = tl.load(scales_ptr + w_rows[:, None] * (K // 32) + g[None, :], mask=n_ok[:, None] & (g < K // 32)[None, :], other=127)
                acc = tl.dot_scaled(packed, scale, "e2m1", xt, None, "bf16", acc)
            else:
                ke = k0 + 2 * tl.arange(0, BLOCK_K // 2)
                xm = row_ok[None, :] & (ke < K)[:, None]
                x_even = tl.load(x_ptr + rows[None, :] * stride_xm + ke[:, None], mask=xm, other=0.0)
                x_odd = tl.load(x_ptr + rows[None, :] * stride_xm + ke[:, None] + 1, mask=xm, other=0.0)
                if MODE == 1:  # bit construction (moe_kernels._mx_tile)
                    w_even, w_odd = _mx_tile(blocks_ptr, scales_ptr, w_rows, n_ok, k0 // 32, BLOCK_K // 32, K)
                else:  # byte-permute table, scale as a bf16 multiply
                    GROUPS: tl.constexpr = BLOCK_K // 32
                    g = k0 // 32 + tl.arange(0, GROUPS)
                    ok = n_ok[:, None] & (g < K // 32)[None, :]
                    group = w_rows[:, None] * (K // 32) + g[None, :]
                    s = tl.load(scales_ptr + group, mask=ok, other=127).to(tl.int32)
                    scale = ((tl.minimum(tl.maximum(s, 1), 254) << 7).to(tl.uint16).to(tl.bfloat16, bitcast=True))[:, :, None]
                    packed = tl.load(blocks_ptr + group[:, :, None] * 16 + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)
                    if MODE == 8:  # diagnostic: loads only
                        lo = packed.to(tl.bfloat16)
                        hi = lo
                    elif MODE == 2:
                        lo, hi = _lut_unpack(packed)
                        lo, hi = lo * scale, hi * scale
                    elif MODE == 4:
                        lo, hi = _lut_unpack(packed)
                    else:
                        lo, hi = _lut_unpack_scaled(packed, tl.broadcast_to(scale, packed.shape))
                    w_even = tl.reshape(lo, (BLOCK_N, BLOCK_K // 2))
                    w_odd = tl.reshape(hi, (BLOCK_N, BLOCK_K // 2))
                if MODE == 6 or MODE == 8:  # diagnostic: no product
                    acc += tl.sum(w_even.to(tl.float32) + w_odd.to(tl.float32), axis=1)[:, None]
                elif MODE == 5:
                    ka = k0 + tl.arange(0, BLOCK_K)
                    xt = tl.load(x_ptr + rows[None, :] * stride_xm + ka[:, None], mask=row_ok[None, :] & (ka < K)[:, None], other=0.0)
                    acc = tl.dot(tl.interleave(w_even, w_odd).to(xt.dtype), xt, acc)
                else:
                    acc = tl.dot(w_even.to(x_even.dtype), x_even, acc)
                    acc = tl.dot(w_odd.to(x_odd.dtype), x_odd, acc)
        out = out_ptr + rows[None, :] * stride_om + n[:, None]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[None, :] & n_ok[:, None])
        m0 += BLOCK_M


def swapped(x, offsets, blocks, scales, mode, BLOCK_M=16, BLOCK_N=128, BLOCK_K=128, num_warps=4, num_stages=3):  # type: ignore
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    grid = (experts, triton.cdiv(n, BLOCK_N))
    _swapped_kernel[grid](
        x, out, offsets, blocks, scales, k, n, x.stride(0), out.stride(0),
        MODE=mode, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out


@triton.jit
def _gemv_kernel(
    x_ptr, out_ptr, offsets_ptr, blocks_ptr, scales_ptr,
    K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    LUT: tl.constexpr, ROWS: tl.constexpr, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr,
):  # fmt: skip
    """No tensor cores: each weight is unpacked once per ROWS tokens and multiplied in float32; the
    scale multiplies each 32-column partial sum."""
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    w_rows = e * N + n
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, ROWS)
        row_ok = rows < end
        acc = tl.zeros((ROWS, BLOCK_N, GROUPS), dtype=tl.float32)
        for g0 in range(0, K // 32, GROUPS):
            g = g0 + tl.arange(0, GROUPS)
            g_ok = g < K // 32
            ok = n_ok[:, None] & g_ok[None, :]
            group = w_rows[:, None] * (K // 32) + g[None, :]
            packed = tl.load(blocks_ptr + group[:, :, None] * 16 + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)
            s = tl.load(scales_ptr + group, mask=ok, other=127).to(tl.int32)
            scale = (tl.minimum(tl.maximum(s, 1), 254) << 23).to(tl.float32, bitcast=True)
            if LUT:
                lo, hi = _lut_unpack(packed)
            else:
                one = _scale_base(tl.full(packed.shape, 127, tl.int32))
                lo, hi = _e2m1(packed.to(tl.int32) & 15, one), _e2m1(packed.to(tl.int32) >> 4, one)
            c = g[:, None] * 32 + tl.arange(0, 32)[None, :]
            x = tl.load(
                x_ptr + rows[:, None, None] * stride_xm + c[None, :, :],
                mask=row_ok[:, None, None] & g_ok[None, :, None], other=0.0,
            ).to(tl.float32)
            xe, xo = tl.split(tl.reshape(x, (ROWS, GROUPS, 16, 2)))
            part = tl.sum(lo.to(tl.float32)[None] * xe[:, None] + hi.to(tl.float32)[None] * xo[:, None], axis=3)
            acc += part * scale[None]
        out = tl.sum(acc, axis=2)
        tl.store(out_ptr + rows[:, None] * stride_om + n[None, :], out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])
        m0 += ROWS


def gemv(x, offsets, blocks, scales, LUT=True, ROWS=2, BLOCK_N=16, GROUPS=8, num_warps=4, num_stages=3):  # type: ignore
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    grid = (experts, triton.cdiv(n, BLOCK_N))
    _gemv_kernel[grid](
        x, out, offsets, blocks, scales, k, n, x.stride(0), out.stride(0),
        LUT=LUT, ROWS=ROWS, BLOCK_N=BLOCK_N, GROUPS=GROUPS, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out


@triton.jit
def _v2_kernel(
    x_ptr, out_ptr, offsets_ptr, blocks, scales_ptr,
    K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    TMA: tl.constexpr, LOADS_ONLY: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Swapped product, x loaded whole rows and split in registers; the packed tile by TMA or pointers."""
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    w_rows = e * N + n
    GROUPS: tl.constexpr = BLOCK_K // 32
    m0, end = _expert_rows(offsets_ptr, e)
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            if TMA:
                packed = blocks.load([e * N + tl.program_id(1) * BLOCK_N, k0 // 2])
            else:
                kb = k0 // 2 + tl.arange(0, BLOCK_K // 2)
                packed = tl.load(blocks + w_rows[:, None] * (K // 2) + kb[None, :], mask=n_ok[:, None] & (kb < K // 2)[None, :], other=0)
            if LOADS_ONLY:
                acc += tl.sum(packed.to(tl.float32), axis=1)[:, None]
            else:
                g = k0 // 32 + tl.arange(0, GROUPS)
                ok = n_ok[:, None] & (g < K // 32)[None, :]
                s = tl.load(scales_ptr + w_rows[:, None] * (K // 32) + g[None, :], mask=ok, other=127).to(tl.int32)
                scale = ((tl.minimum(tl.maximum(s, 1), 254) << 7).to(tl.uint16).to(tl.bfloat16, bitcast=True))[:, :, None]
                lo, hi = _lut_unpack(tl.reshape(packed, (BLOCK_N, GROUPS, 16)))
                w_even = tl.reshape(lo * scale, (BLOCK_N, BLOCK_K // 2))
                w_odd = tl.reshape(hi * scale, (BLOCK_N, BLOCK_K // 2))
                k = k0 + tl.arange(0, BLOCK_K)
                x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & (k < K)[None, :], other=0.0)
                x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
                acc = tl.dot(w_even, tl.trans(x_even), acc)
                acc = tl.dot(w_odd, tl.trans(x_odd), acc)
        out = out_ptr + rows[None, :] * stride_om + n[:, None]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[None, :] & n_ok[:, None])
        m0 += BLOCK_M


def v2(x, offsets, blocks, scales, tma, loads_only, BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3):  # type: ignore
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    flat = blocks.view(experts * n, k // 2)
    b = TensorDescriptor.from_tensor(flat, [BLOCK_N, BLOCK_K // 2]) if tma else flat
    grid = (experts, triton.cdiv(n, BLOCK_N))
    _v2_kernel[grid](
        x, out, offsets, b, scales, k, n, x.stride(0), out.stride(0),
        TMA=tma, LOADS_ONLY=loads_only, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return out


@triton.jit
def _stream_kernel(offsets_ptr, blocks_ptr, out_ptr, K: tl.constexpr, N: tl.constexpr, LAYOUT: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT: tl.constexpr, CHUNK: tl.constexpr):
    """Diagnostic: read the routed experts' packed bytes only, in different orders."""
    if LAYOUT == 1:
        e = tl.program_id(1)
        nb = tl.program_id(0)
    else:
        e = tl.program_id(0)
        nb = tl.program_id(1)
    m0, end = _expert_rows(offsets_ptr, e)
    if m0 < end:
        if LAYOUT == 3:  # contiguous chunks of the expert's bytes
            base = e.to(tl.int64) * N * (K // 2) + nb * CHUNK
            acc = tl.zeros((1024,), dtype=tl.int32)
            for i in range(0, CHUNK, 1024):
                idx = base + i + tl.arange(0, 1024)
                acc += tl.load(blocks_ptr + idx, mask=nb * CHUNK + i + tl.arange(0, 1024) < N * (K // 2), other=0).to(tl.int32)
            tl.store(out_ptr + e * 4096 + nb, tl.sum(acc))
        else:
            n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
            n_ok = n < N
            w_rows = e * N + n
            acc = tl.zeros((BLOCK_N,), dtype=tl.int32)
            kz = tl.program_id(2) * (K // SPLIT)
            for k0 in range(0, K // SPLIT, BLOCK_K):
                kb = (kz + k0) // 2 + tl.arange(0, BLOCK_K // 2)
                packed = tl.load(blocks_ptr + w_rows[:, None] * (K // 2) + kb[None, :], mask=n_ok[:, None] & (kb < K // 2)[None, :], other=0)
                acc += tl.sum(packed.to(tl.int32), axis=1)
            tl.store(out_ptr + e * 4096 + nb, tl.sum(acc))


def stream(blocks, offsets, layout, BLOCK_N=64, BLOCK_K=128, SPLIT=1, CHUNK=16384, num_warps=4, num_stages=3):  # type: ignore
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((experts * 4096,), dtype=torch.int32, device=blocks.device)
    if layout == 3:
        grid = (experts, triton.cdiv(n * k // 2, CHUNK))
    elif layout == 1:
        grid = (triton.cdiv(n, BLOCK_N), experts, SPLIT)
    else:
        grid = (experts, triton.cdiv(n, BLOCK_N), SPLIT)
    _stream_kernel[grid](offsets, blocks, out, k, n, layout, BLOCK_N, BLOCK_K, SPLIT, CHUNK, num_warps=num_warps, num_stages=num_stages)
    return out


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    problems = []
    for name, (out_features, in_features) in SHAPES.items():
        groups = (EXPERTS, out_features, in_features // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, device="cuda")
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, device="cuda")
        weight = dequantize(blocks, scales, torch.bfloat16)
        offsets, routed = routing(gen)
        x = torch.randn(TOKENS * TOP_K, in_features, device="cuda", dtype=torch.bfloat16)
        want = F.grouped_mm(x, weight.transpose(1, 2), offs=offsets)
        packed = routed * out_features * (in_features // 2 + in_features // 32)
        problems.append((name, x, offsets, blocks, scales, want, packed))
    for name, x, offsets, blocks, scales, want, packed in problems:
        report[f"{name}_current_us"] = round(median_us(lambda: grouped_linear(x, offsets, blocks=blocks, scales=scales)), 1)
        report[f"{name}_current_err"] = rel_err(grouped_linear(x, offsets, blocks=blocks, scales=scales), want)
        report[f"{name}_floor_us"] = round(packed / 4.8e6, 1)
    if sys.argv[1:2] == ["one"]:  # one configuration, for a profiler
        mode, bn, bk, w, st = map(int, sys.argv[2:7])
        for _ in range(5):
            for name, x, offsets, blocks, scales, want, packed in problems:
                swapped(x, offsets, blocks, scales, mode, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=st)
        torch.cuda.synchronize()
        return
    modes = [int(m) for m in sys.argv[1:]] or [0, 1, 2]
    results = []
    if 20 in modes:
        modes.remove(20)
        rows = []
        for layout, bn, bk, split, chunk, w in [
            (0, 64, 128, 1, 0, 4), (1, 64, 128, 1, 0, 4), (0, 64, 128, 4, 0, 4), (1, 64, 128, 4, 0, 4),
            (0, 32, 256, 2, 0, 4), (1, 16, 256, 1, 0, 4), (1, 128, 256, 4, 0, 8), (0, 64, 128, 8, 0, 4),
            (3, 0, 0, 1, 16384, 4), (3, 0, 0, 1, 65536, 4), (3, 0, 0, 1, 8192, 8), (3, 0, 0, 1, 32768, 8),
        ]:
            total = 0.0
            for name, x, offsets, blocks, scales, want, packed in problems:
                total += median_us(lambda: stream(blocks, offsets, layout, bn or 64, bk or 128, split, chunk or 16384, w), repeat=10)
            rows.append(dict(layout=layout, bn=bn, bk=bk, split=split, chunk=chunk, warps=w, us=round(total, 1)))
        report["stream"] = rows
    for mode in [m for m in modes if m >= 10]:
        modes.remove(mode)
        tma, loads_only = mode in (11, 12), mode in (12, 13)
        for bn, bk, w, stages in itertools.product([32, 64, 128], [64, 128, 256], [4, 8], [2, 3, 4]):
            tiles = dict(BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=stages)
            total, errs = 0.0, []
            try:
                for name, x, offsets, blocks, scales, want, packed in problems:
                    errs.append(rel_err(v2(x, offsets, blocks, scales, tma, loads_only, **tiles), want))
                    total += median_us(lambda: v2(x, offsets, blocks, scales, tma, loads_only, **tiles), repeat=10)
            except Exception as error:  # noqa: BLE001
                results.append({"mode": mode, **tiles, "failed": str(error)[:300]})
                continue
            results.append({"mode": mode, **tiles, "us": round(total, 1), "err": 0.0 if loads_only else max(errs)})
            print(json.dumps(results[-1]), flush=True)
        okm = [r for r in results if r["mode"] == mode and "us" in r and r["err"] < 1e-2]
        report[f"best_mode{mode}"] = sorted(okm, key=lambda r: r["us"])[:3]
    if 7 in modes:
        modes.remove(7)
        for rows, bn, groups, w, stages in itertools.product([1, 2, 4], [8, 16, 32], [4, 8], [4, 8], [3]):
            tiles = dict(ROWS=rows, BLOCK_N=bn, GROUPS=groups, num_warps=w, num_stages=stages)
            total, errs = 0.0, []
            try:
                for name, x, offsets, blocks, scales, want, packed in problems:
                    errs.append(rel_err(gemv(x, offsets, blocks, scales, **tiles), want))
                    total += median_us(lambda: gemv(x, offsets, blocks, scales, **tiles), repeat=10)
            except Exception as error:  # noqa: BLE001
                results.append({"mode": 7, **tiles, "failed": str(error)[:300]})
                continue
            results.append({"mode": 7, **tiles, "us": round(total, 1), "err": max(errs)})
            print(json.dumps(results[-1]), flush=True)
        ok7 = [r for r in results if "us" in r and r["err"] < 1e-2]
        report["best_mode7"] = sorted(ok7, key=lambda r: r["us"])[:5]
    for mode, bn, bk, w, s, bm in itertools.product(modes, [32, 64, 128], [64, 128], [2, 4], [2, 3], [16]):
        tiles = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=s)
        total, errs = 0.0, []
        try:
            for name, x, offsets, blocks, scales, want, packed in problems:
                errs.append(rel_err(swapped(x, offsets, blocks, scales, mode, **tiles), want))
                total += median_us(lambda: swapped(x, offsets, blocks, scales, mode, **tiles), repeat=10)
        except Exception as error:  # noqa: BLE001
            results.append({"mode": mode, **tiles, "failed": str(error)[:200]})
            continue
        results.append({"mode": mode, **tiles, "us": round(total, 1), "err": max(errs)})
        if mode in (4, 6, 8):
            results[-1]["err"] = 0.0  # timing only
        print(json.dumps(results[-1]), flush=True)
    ok = [r for r in results if "us" in r and r["err"] < 1e-2]
    for mode in modes:
        best = min((r for r in ok if r["mode"] == mode), key=lambda r: r["us"], default=None)
        report[f"best_mode{mode}"] = best
    report["failed"] = [r for r in results if "failed" in r][:4]
    report["n_failed"] = sum("failed" in r for r in results)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
