"""Exploration: the CUDA-core MXFP4 decode product with the codes as int64 pairs of words.

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_gemv3.py

`moe_kernels._mx_gemv_kernel` views the codes as int32 words and packs 4 (one 32-column group)
per inline-PTX call, so its float32 accumulator holds 4 values a group, 3 of them copied through
unchanged: 32 registers a thread and x row at its tile. Viewed as int64 (2 words) and packed 2,
the accumulator holds 2 values a group. With the registers that frees, an expert's rows can go
up to 4 at a time (one unpacking for all). Compared with moe_kernels at gpt-oss-20b's decode
shape (8 tokens x 4 of 32 experts, gate_up + down, CUDA-graph timed); GPU only.
"""

from __future__ import annotations

import itertools
import json
import os

import torch
import triton
import triton.language as tl


def _asm(x_rows: int) -> str:
    """One 32-column group (2 int64 codes, pack 2) of a weight row times `x_rows` x rows. Operands
    (2 each): acc' per x row, acc per x row, codes, scale address, x address per x row."""
    outs = 2 * x_rows
    codes, scale, x_addr = 2 * outs, 2 * outs + 2, lambda r: 2 * outs + 4 + 2 * r  # noqa: E731
    body = [
        "{",
        ".reg .b32 a, b, lo, hi, p0, p1, f0, f1, f2, f3, sc, w<4>;",
        ".reg .b32 " + ", ".join(f"h{r}" for r in range(x_rows)) + ";",
        ".reg .b32 " + ", ".join(f"x{r}_<16>" for r in range(x_rows)) + ";",
        ".reg .b16 q0, q1, q2, q3;",
        ".reg .f32 s0, s1, fs;",
        f"ld.global.nc.u8 sc, [${scale}];",
        f"mov.b64 {{w0, w1}}, ${codes};",
        f"mov.b64 {{w2, w3}}, ${codes + 1};",
    ]
    for r in range(x_rows):
        body += [
            f"ld.global.nc.v4.b32 {{x{r}_{4 * i}, x{r}_{4 * i + 1}, x{r}_{4 * i + 2}, x{r}_{4 * i + 3}}}, [${x_addr(r)}+{16 * i}];"
            for i in range(4)
        ]
    for c in range(4):
        w = f"w{c}"
        body += [
            f"shl.b32 a, {w}, 2;", f"shl.b32 b, {w}, 4;", "and.b32 a, a, 0x1C1C1C1C;", "and.b32 b, b, 0x80808080;",
            "or.b32 lo, a, b;", f"shr.b32 a, {w}, 2;", "and.b32 a, a, 0x1C1C1C1C;", f"and.b32 b, {w}, 0x80808080;",
            "or.b32 hi, a, b;", "prmt.b32 p0, lo, hi, 0x5140;", "prmt.b32 p1, lo, hi, 0x7362;",
            "mov.b32 {q0, q1}, p0;", "mov.b32 {q2, q3}, p1;",
            "cvt.rn.f16x2.e4m3x2 f0, q0;", "cvt.rn.f16x2.e4m3x2 f1, q1;",
            "cvt.rn.f16x2.e4m3x2 f2, q2;", "cvt.rn.f16x2.e4m3x2 f3, q3;",
        ]  # fmt: skip
        for r in range(x_rows):
            x = [f"x{r}_{4 * c + j}" for j in range(4)]
            body += [
                f"mul.rn.f16x2 h{r}, f0, {x[0]};" if c == 0 else f"fma.rn.f16x2 h{r}, f0, {x[0]}, h{r};",
                f"fma.rn.f16x2 h{r}, f1, {x[1]}, h{r};", f"fma.rn.f16x2 h{r}, f2, {x[2]}, h{r};",
                f"fma.rn.f16x2 h{r}, f3, {x[3]}, h{r};",
            ]  # fmt: skip
    body += ["add.u32 sc, sc, 6;", "min.u32 sc, sc, 254;", "shl.b32 sc, sc, 23;", "mov.b32 fs, sc;"]
    for r in range(x_rows):
        body += [
            f"mov.b32 {{q0, q1}}, h{r};", "cvt.f32.f16 s0, q0;", "cvt.f32.f16 s1, q1;", "add.f32 s0, s0, s1;",
            f"fma.rn.f32 ${2 * r}, s0, fs, ${outs + 2 * r};", f"mov.b32 ${2 * r + 1}, ${outs + 2 * r + 1};",
        ]  # fmt: skip
    return "\n".join(body + ["}"])


def _constraints(x_rows: int) -> str:
    return ",".join(["=f"] * (2 * x_rows) + ["f"] * (2 * x_rows) + ["l"] * (2 + 2 + 2 * x_rows))


A1: tl.constexpr = tl.constexpr(_asm(1))
A2: tl.constexpr = tl.constexpr(_asm(2))
A4: tl.constexpr = tl.constexpr(_asm(4))
C1: tl.constexpr = tl.constexpr(_constraints(1))
C2: tl.constexpr = tl.constexpr(_constraints(2))
C4: tl.constexpr = tl.constexpr(_constraints(4))


@triton.jit
def _p(ptr):  # type: ignore[no-untyped-def]
    return ptr.to(tl.int64, bitcast=True)


@triton.jit
def _kernel(
    x_ptr, out_ptr, offsets_ptr, w_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    RMAX: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """x: int32 view of f16 x [P, K/2]; w: int64 view of the blocks [E * N, K / 16]."""
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    rows = (e * N + n).to(tl.int64)
    end = tl.load(offsets_ptr + e)
    m0 = tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0)
    dwords = tl.arange(0, BLOCK_K // 16)
    ty = out_ptr.dtype.element_ty
    while m0 < end:
        left = end - m0
        if RMAX >= 4:
            take = tl.where(left >= 4, 4, tl.where(left >= 2, 2, 1))
        elif RMAX >= 2:
            take = tl.where(left >= 2, 2, 1)
        else:
            take = tl.where(left >= 1, 1, 1)
        m1, m2, m3 = m0 + 1, m0 + 2, m0 + 3
        a0 = tl.zeros((BLOCK_N, BLOCK_K // 16), dtype=tl.float32)
        a1 = tl.zeros((BLOCK_N, BLOCK_K // 16), dtype=tl.float32)
        a2 = tl.zeros((BLOCK_N, BLOCK_K // 16), dtype=tl.float32)
        a3 = tl.zeros((BLOCK_N, BLOCK_K // 16), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            dword = k0 // 16 + dwords
            ok = n_ok[:, None] & (dword < K // 16)[None, :]
            codes = tl.load(w_ptr + rows[:, None] * (K // 16) + dword[None, :], mask=ok, other=0)
            inside = tl.minimum(dword, K // 16 - 1)
            s = _p(scales_ptr + rows[:, None] * (K // 32) + (inside // 2)[None, :])
            xo = (inside * 8)[None, :]
            x0 = _p(tl.broadcast_to(x_ptr + m0 * stride_xm + xo, codes.shape))
            if take == 4:
                x1 = _p(tl.broadcast_to(x_ptr + m1 * stride_xm + xo, codes.shape))
                x2 = _p(tl.broadcast_to(x_ptr + m2 * stride_xm + xo, codes.shape))
                x3 = _p(tl.broadcast_to(x_ptr + m3 * stride_xm + xo, codes.shape))
                a0, a1, a2, a3 = tl.inline_asm_elementwise(
                    asm=A4, constraints=C4, args=[a0, a1, a2, a3, codes, s, x0, x1, x2, x3],
                    dtype=(tl.float32,) * 4, is_pure=True, pack=2,
                )  # fmt: skip
            elif take == 2:
                x1 = _p(tl.broadcast_to(x_ptr + m1 * stride_xm + xo, codes.shape))
                a0, a1 = tl.inline_asm_elementwise(
                    asm=A2, constraints=C2, args=[a0, a1, codes, s, x0, x1], dtype=(tl.float32,) * 2, is_pure=True, pack=2
                )
            else:
                a0 = tl.inline_asm_elementwise(
                    asm=A1, constraints=C1, args=[a0, codes, s, x0], dtype=tl.float32, is_pure=True, pack=2
                )
        tl.store(out_ptr + m0 * stride_om + n, tl.sum(a0, axis=1).to(ty), mask=n_ok)
        if take >= 2:
            tl.store(out_ptr + m1 * stride_om + n, tl.sum(a1, axis=1).to(ty), mask=n_ok)
        if take >= 4:
            tl.store(out_ptr + m2 * stride_om + n, tl.sum(a2, axis=1).to(ty), mask=n_ok)
            tl.store(out_ptr + m3 * stride_om + n, tl.sum(a3, axis=1).to(ty), mask=n_ok)
        m0 += take


def gemv(x, offsets, blocks, scales, RMAX=2, BLOCK_N=32, BLOCK_K=1024, num_warps=4):  # type: ignore[no-untyped-def]
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((x.shape[0], n), dtype=torch.bfloat16, device=x.device)
    _kernel[(experts, triton.cdiv(n, BLOCK_N))](
        x.view(torch.int32), out, offsets, blocks.view(torch.int64), scales, k, n, x.stride(0) // 2, out.stride(0),
        RMAX=RMAX, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=num_warps,
    )  # fmt: skip
    return out


def main() -> None:
    from explore_gemv2 import cases_and_base

    cases, report = cases_and_base()
    results = []
    for rmax, bn, bk, warps in itertools.product([1, 2, 4], [16, 32, 64], [1024, 2048], [4]):
        total, err = 0.0, 0.0
        try:
            for _, x, _, offsets, blocks, scales, want in cases:
                call = lambda: gemv(x, offsets, blocks, scales, rmax, bn, bk, warps)  # noqa: E731
                err = max(err, rel_err(call(), want))
                total += graph_us(call)
        except Exception as exc:  # noqa: BLE001
            results.append({"cfg": [rmax, bn, bk, warps], "error": str(exc)[:300]})
            print(json.dumps(results[-1]), flush=True)
            continue
        results.append({"cfg": [rmax, bn, bk, warps], "us": round(total, 1), "err": round(err, 5)})
        print(json.dumps(results[-1]), flush=True)
    report["results"] = sorted(results, key=lambda r: r.get("us", 1e9))
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "explore_gemv3.json"), "w") as f:
            json.dump(report, f, indent=1)


from timing import graph_us, rel_err  # noqa: E402  (bench/engine on the path)

if __name__ == "__main__":
    main()
