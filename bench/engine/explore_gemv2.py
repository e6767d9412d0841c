"""Exploration: cheaper variants of the CUDA-core MXFP4 decode product (`moe_kernels._mx_gemv_kernel`).

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_gemv2.py [--base]

Three ideas, each alone and together, against the kernel in moe_kernels at gpt-oss-20b's decode
shape (8 tokens x 4 of 32 experts, gate_up + down, CUDA-graph timed):

- PERM: x's columns stored even-then-odd within each 8 (0 2 4 6 1 3 5 7), so the fp8 pairs the
  conversion gives, (c0 c2) (c4 c6) (c1 c3) (c5 c7), already match x's pairs: no `prmt` (2 of the
  13 unpacking instructions a word);
- R2: an expert's rows two at a time while two remain (one unpacking, two x rows), one at a time
  for the last odd row (the earlier 2-row try did two rows always, wasting the second at 1 row);
- W2: each thread takes the same group of two weight rows, so the group's x is loaded once for
  both (x loads a group-row: 4 -> 2 16-byte loads).
GPU only (inline PTX); each variant checked against dequantize + einsum in float32.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

import torch
import triton
import triton.language as tl


def _group_asm(w_rows: int, x_rows: int, perm: bool) -> str:
    """PTX for one 32-column group (4 words, pack 4) of `w_rows` weight rows times `x_rows` x rows.
    Operands: the outputs acc'[w][r] (4 regs each), the inputs acc[w][r] (4 each), codes[w] (4
    each), the scale address of weight row w (4 each, element 0 used), the x address of row r (4
    each, element 0 used). acc'[w][r][0] = acc[w][r][0] + 2^(s_w - 121) * sum; [1..3] copied."""
    outs = 4 * w_rows * x_rows
    out = lambda w, r, c: f"${4 * (w * x_rows + r) + c}"  # noqa: E731
    acc = lambda w, r, c: f"${outs + 4 * (w * x_rows + r) + c}"  # noqa: E731
    code = lambda w, c: f"${2 * outs + 4 * w + c}"  # noqa: E731
    s_addr = lambda w: f"${2 * outs + 4 * w_rows + 4 * w}"  # noqa: E731
    x_addr = lambda r: f"${2 * outs + 8 * w_rows + 4 * r}"  # noqa: E731
    body = [
        "{",
        ".reg .b32 a, b, lo, hi, p0, p1, f0, f1, f2, f3, sc;",
        ".reg .b32 " + ", ".join(f"h{r}" for r in range(x_rows)) + ";",
        ".reg .b32 " + ", ".join(f"x{r}_<16>" for r in range(x_rows)) + ";",
        ".reg .b16 q0, q1, q2, q3, u0, u1;",
        ".reg .f32 s0, s1, fs;",
    ]
    for r in range(x_rows):
        body += [
            f"ld.global.nc.v4.b32 {{x{r}_{4 * i}, x{r}_{4 * i + 1}, x{r}_{4 * i + 2}, x{r}_{4 * i + 3}}}, [{x_addr(r)}+{16 * i}];"
            for i in range(4)
        ]
    for w in range(w_rows):
        body.append(f"ld.global.nc.u8 sc, [{s_addr(w)}];")
        for c in range(4):
            word = code(w, c)
            body += [
                f"shl.b32 a, {word}, 2;", f"shl.b32 b, {word}, 4;", "and.b32 a, a, 0x1C1C1C1C;",
                "and.b32 b, b, 0x80808080;", "or.b32 lo, a, b;",
                f"shr.b32 a, {word}, 2;", "and.b32 a, a, 0x1C1C1C1C;", f"and.b32 b, {word}, 0x80808080;",
                "or.b32 hi, a, b;",
            ]  # fmt: skip
            if perm:  # pairs (c0 c2) (c4 c6) (c1 c3) (c5 c7), x stored in that order
                body += ["mov.b32 {q0, q1}, lo;", "mov.b32 {q2, q3}, hi;"]
            else:
                body += [
                    "prmt.b32 p0, lo, hi, 0x5140;", "prmt.b32 p1, lo, hi, 0x7362;",
                    "mov.b32 {q0, q1}, p0;", "mov.b32 {q2, q3}, p1;",
                ]  # fmt: skip
            body += [f"cvt.rn.f16x2.e4m3x2 f{j}, q{j};" for j in range(4)]
            for r in range(x_rows):
                xs = [f"x{r}_{4 * c + j}" for j in range(4)]
                body += [
                    f"mul.rn.f16x2 h{r}, f0, {xs[0]};" if c == 0 else f"fma.rn.f16x2 h{r}, f0, {xs[0]}, h{r};",
                    f"fma.rn.f16x2 h{r}, f1, {xs[1]}, h{r};",
                    f"fma.rn.f16x2 h{r}, f2, {xs[2]}, h{r};",
                    f"fma.rn.f16x2 h{r}, f3, {xs[3]}, h{r};",
                ]
        body += ["add.u32 sc, sc, 6;", "min.u32 sc, sc, 254;", "shl.b32 sc, sc, 23;", "mov.b32 fs, sc;"]
        for r in range(x_rows):
            body += [
                f"mov.b32 {{u0, u1}}, h{r};", "cvt.f32.f16 s0, u0;", "cvt.f32.f16 s1, u1;", "add.f32 s0, s0, s1;",
                f"fma.rn.f32 {out(w, r, 0)}, s0, fs, {acc(w, r, 0)};",
            ] + [f"mov.b32 {out(w, r, c)}, {acc(w, r, c)};" for c in (1, 2, 3)]
    return "\n".join(body + ["}"])


def _constraints(w_rows: int, x_rows: int) -> str:
    outs = 4 * w_rows * x_rows
    return ",".join(["=f"] * outs + ["f"] * outs + ["r"] * (4 * w_rows) + ["l"] * (4 * w_rows + 4 * x_rows))


G11: tl.constexpr = tl.constexpr(_group_asm(1, 1, False))
G11P: tl.constexpr = tl.constexpr(_group_asm(1, 1, True))
G12: tl.constexpr = tl.constexpr(_group_asm(1, 2, False))
G12P: tl.constexpr = tl.constexpr(_group_asm(1, 2, True))
G21: tl.constexpr = tl.constexpr(_group_asm(2, 1, False))
G21P: tl.constexpr = tl.constexpr(_group_asm(2, 1, True))
G22: tl.constexpr = tl.constexpr(_group_asm(2, 2, False))
G22P: tl.constexpr = tl.constexpr(_group_asm(2, 2, True))
C11: tl.constexpr = tl.constexpr(_constraints(1, 1))
C12: tl.constexpr = tl.constexpr(_constraints(1, 2))
C21: tl.constexpr = tl.constexpr(_constraints(2, 1))
C22: tl.constexpr = tl.constexpr(_constraints(2, 2))


@triton.jit
def _g11(a, c, s, x, PERM: tl.constexpr):  # type: ignore[no-untyped-def]
    return tl.inline_asm_elementwise(
        asm=G11P if PERM else G11, constraints=C11, args=[a, c, s.to(tl.int64, bitcast=True), x.to(tl.int64, bitcast=True)],
        dtype=tl.float32, is_pure=True, pack=4,
    )  # fmt: skip


@triton.jit
def _g12(a0, a1, c, s, x0, x1, PERM: tl.constexpr):  # type: ignore[no-untyped-def]
    return tl.inline_asm_elementwise(
        asm=G12P if PERM else G12, constraints=C12,
        args=[a0, a1, c, s.to(tl.int64, bitcast=True), x0.to(tl.int64, bitcast=True), x1.to(tl.int64, bitcast=True)],
        dtype=(tl.float32, tl.float32), is_pure=True, pack=4,
    )  # fmt: skip


@triton.jit
def _g21(a, b, ca, cb, sa, sb, x, PERM: tl.constexpr):  # type: ignore[no-untyped-def]
    return tl.inline_asm_elementwise(
        asm=G21P if PERM else G21, constraints=C21,
        args=[a, b, ca, cb, sa.to(tl.int64, bitcast=True), sb.to(tl.int64, bitcast=True), x.to(tl.int64, bitcast=True)],
        dtype=(tl.float32, tl.float32), is_pure=True, pack=4,
    )  # fmt: skip


@triton.jit
def _g22(a0, a1, b0, b1, ca, cb, sa, sb, x0, x1, PERM: tl.constexpr):  # type: ignore[no-untyped-def]
    return tl.inline_asm_elementwise(
        asm=G22P if PERM else G22, constraints=C22,
        args=[
            a0, a1, b0, b1, ca, cb, sa.to(tl.int64, bitcast=True), sb.to(tl.int64, bitcast=True),
            x0.to(tl.int64, bitcast=True), x1.to(tl.int64, bitcast=True),
        ],
        dtype=(tl.float32, tl.float32, tl.float32, tl.float32), is_pure=True, pack=4,
    )  # fmt: skip


@triton.jit
def _kernel(
    x_ptr, out_ptr, offsets_ptr, w_ptr, scales_ptr, K: tl.constexpr, N: tl.constexpr, stride_xm, stride_om,
    W: tl.constexpr, R2: tl.constexpr, PERM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    e = tl.program_id(0)
    HALF: tl.constexpr = BLOCK_N // W
    na = tl.program_id(1) * BLOCK_N + tl.arange(0, HALF)
    nb = na + HALF
    oka, okb = na < N, nb < N
    ra, rb = (e * N + na).to(tl.int64), (e * N + nb).to(tl.int64)
    end = tl.load(offsets_ptr + e)
    m0 = tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0)
    words = tl.arange(0, BLOCK_K // 8)
    while m0 < end:
        if R2:
            pair = m0 + 1 < end
        else:
            pair = m0 < 0  # false
        m1 = tl.minimum(m0 + 1, end - 1)
        a0 = tl.zeros((HALF, BLOCK_K // 8), dtype=tl.float32)
        a1 = tl.zeros((HALF, BLOCK_K // 8), dtype=tl.float32)
        b0 = tl.zeros((HALF, BLOCK_K // 8), dtype=tl.float32)
        b1 = tl.zeros((HALF, BLOCK_K // 8), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            word = k0 // 8 + words
            inside = tl.minimum(word, K // 8 - 1)
            kok = (word < K // 8)[None, :]
            ca = tl.load(w_ptr + ra[:, None] * (K // 8) + word[None, :], mask=oka[:, None] & kok, other=0)
            sa = scales_ptr + ra[:, None] * (K // 32) + (inside // 4)[None, :]
            x0 = tl.broadcast_to((x_ptr + m0 * stride_xm + inside * 4)[None, :], ca.shape)
            x1 = tl.broadcast_to((x_ptr + m1 * stride_xm + inside * 4)[None, :], ca.shape)
            if W == 1:
                if pair:
                    a0, a1 = _g12(a0, a1, ca, sa, x0, x1, PERM)
                else:
                    a0 = _g11(a0, ca, sa, x0, PERM)
            else:
                cb = tl.load(w_ptr + rb[:, None] * (K // 8) + word[None, :], mask=okb[:, None] & kok, other=0)
                sb = scales_ptr + rb[:, None] * (K // 32) + (inside // 4)[None, :]
                if pair:
                    a0, a1, b0, b1 = _g22(a0, a1, b0, b1, ca, cb, sa, sb, x0, x1, PERM)
                else:
                    a0, b0 = _g21(a0, b0, ca, cb, sa, sb, x0, PERM)
        ty = out_ptr.dtype.element_ty
        tl.store(out_ptr + m0 * stride_om + na, tl.sum(a0, axis=1).to(ty), mask=oka)
        if W == 2:
            tl.store(out_ptr + m0 * stride_om + nb, tl.sum(b0, axis=1).to(ty), mask=okb)
        if pair:
            tl.store(out_ptr + m1 * stride_om + na, tl.sum(a1, axis=1).to(ty), mask=oka)
            if W == 2:
                tl.store(out_ptr + m1 * stride_om + nb, tl.sum(b1, axis=1).to(ty), mask=okb)
        m0 += 1 + pair.to(tl.int32)


def permute_x(x: torch.Tensor) -> torch.Tensor:
    """Columns 0 2 4 6 1 3 5 7 within each 8."""
    p, k = x.shape
    return x.view(p, k // 8, 4, 2).transpose(-1, -2).reshape(p, k)


def gemv(x, offsets, blocks, scales, W=1, R2=False, PERM=False, BLOCK_N=32, BLOCK_K=1024, num_warps=4):  # type: ignore[no-untyped-def]
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((x.shape[0], n), dtype=torch.bfloat16, device=x.device)
    _kernel[(experts, triton.cdiv(n, BLOCK_N))](
        x.view(torch.int32), out, offsets, blocks.view(torch.int32), scales, k, n, x.stride(0) // 2, out.stride(0),
        W=W, R2=R2, PERM=PERM, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=num_warps,
    )  # fmt: skip
    return out


def cases_and_base() -> tuple[list[tuple], dict[str, object]]:  # type: ignore[type-arg]
    """gate_up and down at the decode shape (x, x permuted, offsets, blocks, scales, the float32
    product), and a report with moe_kernels' kernel timed on them."""
    from rl2048_engine.fast import moe_kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize
    from timing import graph_us, rel_err

    gen = torch.Generator().manual_seed(0)
    experts, tokens, top_k = 32, 8, 4
    cases = []
    for name, (out_f, in_f) in {"gate_up": (5760, 2880), "down": (2880, 2880)}.items():
        groups = (experts, out_f, in_f // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, generator=gen).cuda()
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, generator=gen).cuda()
        weight = dequantize(blocks, scales, torch.float32)
        ids = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)]).flatten()
        counts = torch.bincount(ids, minlength=experts)
        offsets = counts.cumsum(0).to(torch.int32).cuda()
        x = torch.randn(tokens * top_k, in_f, generator=gen).cuda().half()
        rows = torch.repeat_interleave(torch.arange(experts), counts).cuda()
        want = torch.einsum("pk,pnk->pn", x.float(), weight[rows])
        cases.append((name, x, permute_x(x).contiguous(), offsets, blocks, scales, want))
    report: dict[str, object] = {"device": torch.cuda.get_device_name(), "rows_per_expert": counts.tolist()}
    base = 0.0
    for name, _, x, offsets, blocks, scales, want in cases:  # x in pair order, as moe_kernels takes it
        call = lambda: moe_kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales, out_dtype=torch.bfloat16)  # noqa: E731
        report[f"kernel_err_{name}"] = rel_err(call(), want)
        base += graph_us(call)
    report["moe_kernels_us"] = round(base, 1)
    print(json.dumps(report), flush=True)
    return cases, report


def main() -> None:
    from timing import graph_us, rel_err

    cases, report = cases_and_base()
    if "--base" in sys.argv:  # moe_kernels' kernel only
        return
    results = []
    configs = list(itertools.product([1, 2], [False, True], [False, True], [16, 32, 64], [1024], [4]))
    configs += [(w, r, p, bn, 512, 4) for w, r, p in [(1, True, True), (2, True, True)] for bn in (32, 64)]
    configs += [(w, r, p, bn, 1024, 8) for w, r, p in [(1, True, True), (2, True, True)] for bn in (32, 64)]
    for w, r2, perm, bn, bk, warps in configs:
        if bn // w < 8:
            continue
        total, err = 0.0, 0.0
        try:
            for name, x, xp, offsets, blocks, scales, want in cases:
                xin = xp if perm else x
                call = lambda: gemv(xin, offsets, blocks, scales, w, r2, perm, bn, bk, warps)  # noqa: E731
                err = max(err, rel_err(call(), want))
                total += graph_us(call)
        except Exception as exc:  # noqa: BLE001
            results.append({"cfg": [w, r2, perm, bn, bk, warps], "error": str(exc)[:300]})
            print(json.dumps(results[-1]), flush=True)
            continue
        results.append({"cfg": [w, r2, perm, bn, bk, warps], "us": round(total, 1), "err": round(err, 5)})
        print(json.dumps(results[-1]), flush=True)
    report["results"] = sorted(results, key=lambda r: r.get("us", 1e9))
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "explore_gemv2.json"), "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
