"""Exploration: the MXFP4 decode product as a GEMV on the CUDA cores (no tensor cores).

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_gemv.py

Each program owns an expert's BLOCK_N weight rows; lanes walk K, each thread 4 words (32 codes:
one scale group) of a row. Inline PTX loads the group's x (16 f16 pairs) and scale, turns each
word's 8 e2m1 codes into four f16 pairs (fp8 trick + `cvt.rn.f16x2.e4m3x2`), multiplies them
with x in f16x2 FMAs (the group summed in f16x2), then adds 2^(s-121) times the sum to a float32
accumulator. ROWS x rows share one unpacking. Compares with `moe_kernels.grouped_linear` (x in
f16, tensor cores) at gpt-oss-20b's decode shape, CUDA-graph timed.
"""

from __future__ import annotations

import itertools
import json
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _code_value(code):  # type: ignore[no-untyped-def]
    """e2m1 code (0..15) times 2^-6, float32 (the interpreter's path)."""
    mag = code & 7
    e = mag >> 1
    m = (mag & 1).to(tl.float32)
    val = tl.where(e == 0, m * 0.5, (1.0 + m * 0.5) * tl.where(e == 1, 1.0, tl.where(e == 2, 2.0, 4.0)))
    return tl.where((code & 8) != 0, -val, val) * 0.015625


@triton.jit
def _half(pair, hi):  # type: ignore[no-untyped-def]
    return ((pair >> (16 * hi)) & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _dot8_ref(w, x0, x1, x2, x3):  # type: ignore[no-untyped-def]
    """sum over the 8 codes of w (nibble n at bits 4n) times x n (pair n // 2, half n % 2)."""
    acc = _code_value(w & 15) * _half(x0, 0) + _code_value((w >> 4) & 15) * _half(x0, 1)
    acc += _code_value((w >> 8) & 15) * _half(x1, 0) + _code_value((w >> 12) & 15) * _half(x1, 1)
    acc += _code_value((w >> 16) & 15) * _half(x2, 0) + _code_value((w >> 20) & 15) * _half(x2, 1)
    acc += _code_value((w >> 24) & 15) * _half(x3, 0) + _code_value((w >> 28) & 15) * _half(x3, 1)
    return acc



def _group_load_asm(rows: int) -> str:
    """PTX for 4 consecutive words (32 codes, one scale group) of one weight row and `rows` x
    rows. Operands: acc' (rows x 4, f32), acc (rows x 4), the codes (4), the scale byte's address
    (4, element 0 used), then per x row the address of its 16 f16 pairs of the group (4, element 0
    used). acc'[r][0] = acc[r][0] + 2^(s - 121) * (the 32 products summed in f16x2, then f32);
    acc'[r][1..3] = acc[r][1..3]."""
    out = lambda r, c: f"${4 * r + c}"  # noqa: E731
    acc = lambda r, c: f"${4 * rows + 4 * r + c}"  # noqa: E731
    code = lambda c: f"${8 * rows + c}"  # noqa: E731
    s_addr = f"${8 * rows + 4}"
    x_addr = lambda r: f"${8 * rows + 8 + 4 * r}"  # noqa: E731
    body = [
        "{",
        ".reg .b32 a, b, lo, hi, p0, p1, f0, f1, f2, f3, sc;",
        ".reg .b32 " + ", ".join(f"h{r}" for r in range(rows)) + ";",
        ".reg .b32 " + ", ".join(f"x{r}_<16>" for r in range(rows)) + ";",
        ".reg .b16 q0, q1, q2, q3, u0, u1;",
        ".reg .f32 s0, s1, fs;",
        f"ld.global.nc.u8 sc, [{s_addr}];",
    ]
    for r in range(rows):
        body += [
            f"ld.global.nc.v4.b32 {{x{r}_{4 * i}, x{r}_{4 * i + 1}, x{r}_{4 * i + 2}, x{r}_{4 * i + 3}}}, [{x_addr(r)}+{16 * i}];"
            for i in range(4)
        ]
    for c in range(4):
        w = code(c)
        body += [
            f"shl.b32 a, {w}, 2;",
            f"shl.b32 b, {w}, 4;",
            "and.b32 a, a, 0x1C1C1C1C;",
            "and.b32 b, b, 0x80808080;",
            "or.b32 lo, a, b;",
            f"shr.b32 a, {w}, 2;",
            "and.b32 a, a, 0x1C1C1C1C;",
            f"and.b32 b, {w}, 0x80808080;",
            "or.b32 hi, a, b;",
            "prmt.b32 p0, lo, hi, 0x5140;",
            "prmt.b32 p1, lo, hi, 0x7362;",
            "mov.b32 {q0, q1}, p0;",
            "mov.b32 {q2, q3}, p1;",
            "cvt.rn.f16x2.e4m3x2 f0, q0;",
            "cvt.rn.f16x2.e4m3x2 f1, q1;",
            "cvt.rn.f16x2.e4m3x2 f2, q2;",
            "cvt.rn.f16x2.e4m3x2 f3, q3;",
        ]
        for r in range(rows):
            x = [f"x{r}_{4 * c + j}" for j in range(4)]
            body += [
                f"mul.rn.f16x2 h{r}, f0, {x[0]};" if c == 0 else f"fma.rn.f16x2 h{r}, f0, {x[0]}, h{r};",
                f"fma.rn.f16x2 h{r}, f1, {x[1]}, h{r};",
                f"fma.rn.f16x2 h{r}, f2, {x[2]}, h{r};",
                f"fma.rn.f16x2 h{r}, f3, {x[3]}, h{r};",
            ]
    body += ["add.u32 sc, sc, 6;", "min.u32 sc, sc, 254;", "shl.b32 sc, sc, 23;", "mov.b32 fs, sc;"]
    for r in range(rows):
        body += [
            f"mov.b32 {{u0, u1}}, h{r};",
            "cvt.f32.f16 s0, u0;",
            "cvt.f32.f16 s1, u1;",
            "add.f32 s0, s0, s1;",
            f"fma.rn.f32 {out(r, 0)}, s0, fs, {acc(r, 0)};",
        ] + [f"mov.b32 {out(r, c)}, {acc(r, c)};" for c in (1, 2, 3)]
    return "\n".join(body + ["}"])


GROUP_LOAD1: tl.constexpr = tl.constexpr(_group_load_asm(1))
GROUP_LOAD2: tl.constexpr = tl.constexpr(_group_load_asm(2))


@triton.jit
def _pow2(exponent):  # type: ignore[no-untyped-def]
    return ((tl.minimum(tl.maximum(exponent, -126), 127) + 127) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _group_ref(acc, w, s_ptr, x_ptr):  # type: ignore[no-untyped-def]
    """The interpreter's `_group_load`: each word with its own x pairs and scale."""
    scale = _pow2(tl.load(s_ptr).to(tl.int32) - 121)
    x0, x1, x2, x3 = tl.load(x_ptr), tl.load(x_ptr + 1), tl.load(x_ptr + 2), tl.load(x_ptr + 3)
    return acc + _dot8_ref(w, x0, x1, x2, x3) * scale


@triton.jit
def _group_load(acc, w, s_ptr, x_ptr, ASM: tl.constexpr):  # type: ignore[no-untyped-def]
    if ASM:
        return tl.inline_asm_elementwise(
            asm=GROUP_LOAD1,
            constraints="=f,=f,=f,=f,f,f,f,f,r,r,r,r,l,l,l,l,l,l,l,l",
            args=[acc, w, s_ptr.to(tl.int64, bitcast=True), x_ptr.to(tl.int64, bitcast=True)],
            dtype=tl.float32,
            is_pure=True,
            pack=4,
        )
    return _group_ref(acc, w, s_ptr, x_ptr)


@triton.jit
def _group_load2(acc_a, acc_b, w, s_ptr, xa_ptr, xb_ptr, ASM: tl.constexpr):  # type: ignore[no-untyped-def]
    if ASM:
        return tl.inline_asm_elementwise(
            asm=GROUP_LOAD2,
            constraints="=f,=f,=f,=f,=f,=f,=f,=f,f,f,f,f,f,f,f,f,r,r,r,r,l,l,l,l,l,l,l,l,l,l,l,l",
            args=[
                acc_a, acc_b, w, s_ptr.to(tl.int64, bitcast=True), xa_ptr.to(tl.int64, bitcast=True),
                xb_ptr.to(tl.int64, bitcast=True),
            ],
            dtype=(tl.float32, tl.float32),
            is_pure=True,
            pack=4,
        )  # fmt: skip
    return _group_ref(acc_a, w, s_ptr, xa_ptr), _group_ref(acc_b, w, s_ptr, xb_ptr)


@triton.jit
def _gemv_kernel(
    x_ptr,  # int32 view of f16 x [P, K]: [P, K / 2]
    out_ptr,
    offsets_ptr,
    w_ptr,  # int32 view of blocks [E * N, K / 8]
    scales_ptr,  # [E * N, K / 32]
    K: tl.constexpr,
    N: tl.constexpr,
    stride_xm,
    stride_om,
    ROWS: tl.constexpr,
    ASM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    w_rows = (e * N + n).to(tl.int64)
    end = tl.load(offsets_ptr + e)
    m0 = tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0)
    KB: tl.constexpr = BLOCK_K // 8
    kw = tl.arange(0, KB)
    while m0 < end:
        acc_a = tl.zeros((BLOCK_N, KB), dtype=tl.float32)
        acc_b = tl.zeros((BLOCK_N, KB), dtype=tl.float32)
        m1 = tl.minimum(m0 + 1, end - 1)  # the second row (the first again past the expert's rows)
        for k0 in range(0, K, BLOCK_K):
            word = k0 // 8 + kw
            ok = n_ok[:, None] & (word < K // 8)[None, :]
            w = tl.load(w_ptr + w_rows[:, None] * (K // 8) + word[None, :], mask=ok, other=0)
            inside = tl.minimum(word, K // 8 - 1)  # past K: the last group again, times weights 0
            s_ptr = scales_ptr + w_rows[:, None] * (K // 32) + (inside // 4)[None, :]
            xa = tl.broadcast_to((x_ptr + m0 * stride_xm + inside * 4)[None, :], w.shape)
            if ROWS == 1:
                acc_a = _group_load(acc_a, w, s_ptr, xa, ASM)
            else:
                xb = tl.broadcast_to((x_ptr + m1 * stride_xm + inside * 4)[None, :], w.shape)
                acc_a, acc_b = _group_load2(acc_a, acc_b, w, s_ptr, xa, xb, ASM)
        tl.store(out_ptr + m0 * stride_om + n, tl.sum(acc_a, axis=1).to(out_ptr.dtype.element_ty), mask=n_ok)
        if ROWS == 2:
            done = tl.sum(acc_b, axis=1).to(out_ptr.dtype.element_ty)
            tl.store(out_ptr + m1 * stride_om + n, done, mask=n_ok & (m0 + 1 < end))
        m0 += ROWS


def gemv(x, offsets, blocks, scales, out_dtype=torch.bfloat16, ROWS=1, BLOCK_N=32, BLOCK_K=1024, num_warps=4):  # type: ignore[no-untyped-def]
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    x = x.contiguous()
    out = torch.empty((x.shape[0], n), dtype=out_dtype, device=x.device)
    grid = (experts, triton.cdiv(n, BLOCK_N))
    _gemv_kernel[grid](
        x.view(torch.int32), out, offsets, blocks.view(torch.int32), scales, k, n, x.stride(0) // 2, out.stride(0),
        ROWS=ROWS, ASM=not INTERPRET, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=num_warps,
    )  # fmt: skip
    return out


def main() -> None:
    from rl2048_engine.fast.mxfp4_experts import dequantize

    device = "cpu" if INTERPRET else "cuda"
    gen = torch.Generator().manual_seed(0)
    experts, tokens, top_k = (4, 3, 2) if INTERPRET else (32, 8, 4)
    shapes = {"small": (96, 320)} if INTERPRET else {"gate_up": (5760, 2880), "down": (2880, 2880)}
    report: dict[str, object] = {"device": torch.cuda.get_device_name() if not INTERPRET else "cpu"}
    cases = []
    for name, (out_f, in_f) in shapes.items():
        groups = (experts, out_f, in_f // 32)
        blocks = torch.randint(0, 256, (*groups, 16), dtype=torch.uint8, generator=gen).to(device)
        scales = torch.randint(118, 131, groups, dtype=torch.uint8, generator=gen).to(device)
        weight = dequantize(blocks, scales, torch.float32)  # [E, out, in]
        ids = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)]).flatten()
        counts = torch.bincount(ids, minlength=experts)
        offsets = counts.cumsum(0).to(torch.int32).to(device)
        x = torch.randn(tokens * top_k, in_f, generator=gen).to(device).half()
        rows = torch.repeat_interleave(torch.arange(experts), counts.cpu()).to(device)
        want = torch.einsum("pk,pnk->pn", x.float(), weight[rows])
        cases.append((name, x, offsets, blocks, scales, want))
    if INTERPRET:
        for name, x, offsets, blocks, scales, want in cases:
            for rows in (1, 2):
                got = gemv(x, offsets, blocks, scales, out_dtype=torch.float32, ROWS=rows, BLOCK_N=32, BLOCK_K=256)
                err = float((got - want).norm() / want.norm())
                print(name, rows, err)
                assert err < 2e-3, err
        return
    from rl2048_engine.fast import moe_kernels
    from timing import graph_us, rel_err

    base = 0.0
    for name, x, offsets, blocks, scales, want in cases:
        call = lambda: moe_kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales, out_dtype=torch.bfloat16)  # noqa: E731
        base += graph_us(call)
        report[f"tensor_core_err_{name}"] = rel_err(call(), want)
    report["tensor_core_us"] = round(base, 1)
    results = []
    for rows, bn, bk, warps in itertools.product([1, 2], [16, 32, 64, 128], [512, 1024], [4, 8]):
        total, err = 0.0, 0.0
        try:
            for name, x, offsets, blocks, scales, want in cases:
                call = lambda: gemv(x, offsets, blocks, scales, ROWS=rows, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps)  # noqa: E731
                err = max(err, rel_err(call(), want))
                total += graph_us(call)
        except Exception as exc:  # noqa: BLE001
            results.append({"cfg": [rows, bn, bk, warps], "error": str(exc)[:300]})
            continue
        results.append({"cfg": [rows, bn, bk, warps], "us": round(total, 1), "err": err})
    ok = sorted((r for r in results if "us" in r), key=lambda r: r["us"])
    report["fastest"] = ok[:12]
    report["failed"] = [r for r in results if "error" in r][:5]
    report["tried"] = len(results)
    text = json.dumps(report, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "fastest"}))
    for r in ok[:8]:
        print(json.dumps(r))
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "explore_gemv.json"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
