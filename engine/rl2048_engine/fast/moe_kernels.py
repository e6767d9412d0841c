"""Triton kernels for the routed experts: one program per (expert, column block).

`grouped_linear(x, offsets, ...)` is `F.grouped_mm(x, W, offs=offsets)` for `x [P, K]` rows
sorted by expert (`offsets [E]`: cumulative row ends, as grouped_mm takes them). The grid is
`(E, N / BLOCK_N)` whatever the routing, so a call has fixed launch shapes and can sit in a
CUDA graph; the program of an expert no row was routed to loads two offsets and stops, so each
routed expert's weights are read once and the others never.

- dense weights `W [E, K, N]` (bf16 gpt-oss experts as transformers stores them);
- MXFP4 weights as gpt-oss ships them, `blocks [E, N, K/32, 16]` (two e2m1 codes a byte, low
  nibble first) and `scales [E, N, K/32]` (e8m0, 2^(s-127)): each tile is unpacked in registers
  and multiplied at once, so no bf16 copy of an expert ever exists. Even and odd input columns
  are the low and high nibbles: the kernel takes two dots, with the even and the odd columns of x.

Unpacking (`_mx_tile`) loads a tile as `[rows, groups, 16 bytes]` and each scale once per (row,
32-column group). On the GPU (`_e2m1_pairs`) eight codes at a time become bf16 values through byte
permutes (`prmt`) from two tables, about 2.4 instructions a weight, then one multiply by the
scale; under the CPU interpreter, which has no inline assembly, `_e2m1` builds each scaled bit
pattern with integer operations. Both are exact for scales s in 2..252 (2^-125 .. 2^125) and give
the same bits; scales outside (e8m0's NaN, 255, included) are clamped to that range.
`mxfp4.quantize_mxfp4` gives s < 2 only to a block whose largest |w| is below 6 * 2^-126 (9e-38)
and s > 252 only above 6 * 2^125 (2.5e38); such blocks come out within a factor 4 of their values
(tiny ones stay below 4e-37, huge ones finite where they would overflow). Hopper has no fp4
conversion instruction; Triton's `tl.dot_scaled`, which upcasts the same tiles itself, took 375 us
where the byte tables take 284 us (gate_up + down at gpt-oss-20b's decode shape, H200,
bench/RESULTS.md).

With x in f16 (GPUs of compute capability 8.9 and up, `MxExperts.decode_dtype`) the decode
product unpacks through fp8 instead (`_e4m3_pairs`, `_mx_tile_f16`): each code shifted into an e4m3
byte, pairs converted to f16 in one instruction (`cvt.rn.f16x2.e4m3x2`), the scale taken relative
to the weight row's largest in the loop step and the rest applied to the float32 result. gate_up +
down 203.9 -> 175.2 us on an H200 (CUDA-graph timed, bench/RESULTS.md); the byte tables stay for
the transposed product and the dequantization, which work in bf16.

With x in f16 and at most `GEMV_ROWS_PER_EXPERT` rows an expert on average (decode of a small
batch: the seed's 8 tokens x 4 experts over 32 is 1), the product runs on the CUDA cores instead
(`_mx_gemv_kernel`): lanes walk K over a coalesced row of codes, each thread one 32-column scale
group a row; inline PTX loads the group's x and scale, unpacks its codes through fp8 as above,
sums the 32 products in f16x2 FMAs and adds the sum times 2^(s-121) to a float32 accumulator.
An expert's rows go two at a time while two remain (one unpacking for both); tests/ptx.py runs the
assembly on the CPU. It needs x and the blocks 16-byte aligned: the assembly takes a thread's 4
consecutive words as one group, the layout Triton gives 16-byte loads (unaligned blocks would give
each thread one word of 4 rows); other calls take the tensor-core kernel. gate_up + down 158 -> 136 us on an H200 (CUDA-graph timed,
bench/RESULTS.md), 115 us two rows at a time. Exact scales for s <= 248 (all of them but e8m0's
largest 7); the group sums in f16 round to 2^-11 of their magnitude and need |x| below about
40 000.

`grouped_linear_t` is the product with the transposed MXFP4 weight (`dy [P, N] @ W [N, K]`),
the backward pass to the input. Tile sizes follow the rows per expert (`_row_class`): 16-row
tiles for decode (a few rows an expert), 128 for prefill and training, where the packed tiles are
unpacked once per 128 rows and no bf16 copy of an expert is ever made. gate_up + down, H100,
uniform random routing (`bench_kernels.py --tokens`, 2026-12-06, bench/RESULTS.md): at the seed
step's prefill (600 tokens) 0.79 ms forward and 0.80 backward against 1.63 and 1.62 for
dequantizing all 32 experts then `grouped_mm`; at its update (2 800 tokens) 2.19 and 2.30 against
2.19 and 2.16. In the real step the update took 83 ms more (0.41 -> 0.50 s), probably because
one program column per expert is paced by the busiest expert when the routing is uneven. With
`ROW_TILES` in a tile setting, a program takes one row tile instead (`_row_tile`: each finds its
expert from the offsets on the device; the grid is rows / BLOCK_M + one partial tile per expert,
fixed for a row count, so CUDA graphs keep it). On for the many-row MXFP4 kernels (`TILES`): the
update with `kl` 0.496 -> 0.426 s through the engine (H100, 2026-12-07).
`dequantize_experts` unpacks chosen experts at memory speed: the benchmarks' reference for that
older way.
Runs on CUDA, or on the CPU under `TRITON_INTERPRET=1` (the tests check the math that way).
"""

from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from . import pdl


@triton.jit
def _clamped(s):  # type: ignore[no-untyped-def]
    """e8m0 scales s as int32, clamped to 2..252: every exponent field the unpacking builds from
    them (s - 1 .. s + 2) is then a normal one, so both unpacking paths are exact."""
    return tl.minimum(tl.maximum(s.to(tl.int32), 2), 252)


@triton.jit
def _scale_base(s):  # type: ignore[no-untyped-def]
    """bf16 bits of 2^(s-128) for e8m0 scales s (exponent field s - 1), s `_clamped`."""
    return (_clamped(s) - 1) << 7


@triton.jit
def _scale_bf16(s):  # type: ignore[no-untyped-def]
    """2^(s-127) in bf16 (exponent field s) for e8m0 scales s, s `_clamped`."""
    return (_clamped(s) << 7).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _e2m1(code, base):  # type: ignore[no-untyped-def]
    """e2m1 codes (0..15: bit 3 sign, bits 1-2 exponent e, bit 0 mantissa m) times 2^(s-127), in
    bf16, built as bits; `base` is `_scale_base(s)`. For e >= 1 the value 2^(e-1) (1 + m/2) 2^(s-127)
    has exponent field s - 1 + e and top mantissa bit m: base + (code & 7) << 6. For e == 0 it is
    m 2^(s-128): m * base. The sign goes from bit 3 to bit 15."""
    mag = code & 7
    bits = tl.where(mag > 1, base + (mag << 6), mag * base) | (code & 8) << 12
    return bits.to(tl.uint16).to(tl.bfloat16, bitcast=True)


E2M1_PAIRS: tl.constexpr = tl.constexpr(
    """
    {
    .reg .b32 mag, mag_hi, hi_a, hi_b, lo_a, lo_b, h01, l01, h23, l23, t, u;
    mov.b32 hi_a, 0x3F3F3F00;
    mov.b32 hi_b, 0x40404040;
    mov.b32 lo_a, 0xC0800000;
    mov.b32 lo_b, 0xC0804000;
    and.b32 mag, $4, 0x77777777;
    shr.u32 mag_hi, mag, 16;
    prmt.b32 h01, hi_a, hi_b, mag;
    prmt.b32 l01, lo_a, lo_b, mag;
    prmt.b32 h23, hi_a, hi_b, mag_hi;
    prmt.b32 l23, lo_a, lo_b, mag_hi;
    prmt.b32 $0, l01, h01, 0x6240;
    prmt.b32 $1, l23, h23, 0x6240;
    prmt.b32 $2, l01, h01, 0x7351;
    prmt.b32 $3, l23, h23, 0x7351;
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
    """
)
"""`_e2m1_pairs`' assembly."""


@triton.jit
def _e2m1_pairs(packed):  # type: ignore[no-untyped-def]
    """Both e2m1 codes of each byte of `packed` (uint8) as bf16 values, unscaled: `(low nibble's,
    high nibble's)`. One call takes four bytes (eight codes) in a register. A code's magnitude
    (bits 0-2) selects the high and the low byte of its bf16 value from two 8-entry tables held in
    register pairs (`prmt`: 0, 0.5, 1, 1.5 | 2, 3, 4, 6 are 0x0000, 0x3F00, 0x3F80, 0x3FC0 | 0x4000,
    0x4040, 0x4080, 0x40C0); two more permutes pair the bytes into values, and the sign (bit 3) is
    moved to bit 15. GPU only (inline PTX)."""
    return tl.inline_asm_elementwise(
        asm=E2M1_PAIRS,
        constraints="=r,=r,=r,=r,r",
        args=[packed],
        dtype=(tl.bfloat16, tl.bfloat16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def _mx_groups(w_rows, w_rows_ok, g0, GROUPS: tl.constexpr, K: tl.constexpr):  # type: ignore
    """The 32-column groups g0 .. g0 + GROUPS of weight rows `w_rows [R]`: their index in the
    scales (each one's 16 bytes in the blocks follow from it) and whether they exist, `[R, GROUPS]`."""
    g = g0 + tl.arange(0, GROUPS)
    return w_rows[:, None] * (K // 32) + g[None, :], w_rows_ok[:, None] & (g < K // 32)[None, :]


@triton.jit
def _mx_scales(scales_ptr, w_rows, w_rows_ok, g0, GROUPS: tl.constexpr, K: tl.constexpr):  # type: ignore
    """The e8m0 scales of weight rows `w_rows [R]` at groups g0 .. g0 + GROUPS: `[R, GROUPS]`."""
    group, ok = _mx_groups(w_rows, w_rows_ok, g0, GROUPS, K)
    return tl.load(scales_ptr + group, mask=ok, other=0)


@triton.jit
def _mx_codes(blocks_ptr, w_rows, w_rows_ok, g0, GROUPS: tl.constexpr, K: tl.constexpr):  # type: ignore
    """The packed bytes of weight rows `w_rows [R]` at groups g0 .. g0 + GROUPS: `[R, GROUPS, 16]`,
    zero past K and in masked rows. Byte j of a group holds its columns 2j (low nibble) and 2j + 1."""
    group, ok = _mx_groups(w_rows, w_rows_ok, g0, GROUPS, K)
    return tl.load(blocks_ptr + group[:, :, None] * 16 + tl.arange(0, 16)[None, None, :], mask=ok[:, :, None], other=0)


@triton.jit
def _mx_tile(blocks_ptr, s, w_rows, w_rows_ok, g0, GROUPS: tl.constexpr, K: tl.constexpr, LUT: tl.constexpr):  # type: ignore
    """Weight rows `w_rows [R]` (rows of the experts' `[E * N, K]`) at input columns 32 g0 to
    32 (g0 + GROUPS), their scales `s` (`_mx_scales`): `(even, odd)`, the even and the odd columns,
    `[R, 16 GROUPS]` bf16 each; zero past K and in masked rows. `LUT`: unpack by `_e2m1_pairs` (GPU),
    else by `_e2m1`. (Interleaving them into one dot operand breaks Triton 3.6's Hopper wgmma path,
    so the dot kernels take two dots.)

    The scales are loaded apart so that a loop can fetch the next step's while it works on this
    one: Triton does not pipeline them with the weights (2 bytes a thread, below `cp.async`'s 4),
    so each step waited on a global load (gate_up at the decode shape 134 -> 130 us, H200)."""
    packed = _mx_codes(blocks_ptr, w_rows, w_rows_ok, g0, GROUPS, K)
    shape: tl.constexpr = (w_rows.shape[0], 16 * GROUPS)
    if LUT:
        scale = _scale_bf16(s)[:, :, None]
        low, high = _e2m1_pairs(packed)
        return tl.reshape(low * scale, shape), tl.reshape(high * scale, shape)
    base = _scale_base(s)[:, :, None]
    packed = packed.to(tl.int32)
    return tl.reshape(_e2m1(packed & 15, base), shape), tl.reshape(_e2m1(packed >> 4, base), shape)


E4M3_PAIRS: tl.constexpr = tl.constexpr(
    """
    {
    .reg .b32 a, b;
    shl.b32 a, $2, 2;
    shl.b32 b, $2, 4;
    and.b32 a, a, 0x1C1C1C1C;
    and.b32 b, b, 0x80808080;
    or.b32 $0, a, b;
    shr.b32 a, $2, 2;
    and.b32 a, a, 0x1C1C1C1C;
    and.b32 b, $2, 0x80808080;
    or.b32 $1, a, b;
    }
    """
)
"""`_e4m3_pairs`' assembly."""


@triton.jit
def _e4m3_pairs(packed, ASM: tl.constexpr):  # type: ignore[no-untyped-def]
    """Both e2m1 codes of each byte of `packed` (uint8) as e4m3 bytes: `(low nibble's, high
    nibble's)`. The code `s e1 e0 m` becomes `s<<7 | (e1 e0 m)<<2`, which is exactly the code's value
    times 2^-6 (e = 0, 0 and 0.5, included, as e4m3 subnormals). `ASM`: four bytes a register in
    inline PTX (GPU), else the same bits by Triton's integer operations (CPU interpreter)."""
    if ASM:
        return tl.inline_asm_elementwise(
            asm=E4M3_PAIRS,
            constraints="=r,=r,r",
            args=[packed],
            dtype=(tl.uint8, tl.uint8),
            is_pure=True,
            pack=4,
        )
    return ((packed << 2) & 0x1C) | ((packed << 4) & 0x80), ((packed >> 2) & 0x1C) | (packed & 0x80)


@triton.jit
def _mx_tile_f16(blocks_ptr, d, w_rows, w_rows_ok, g0, GROUPS: tl.constexpr, K: tl.constexpr, ASM: tl.constexpr):  # type: ignore
    """`_mx_tile` in f16, through fp8: each group's values times 2^(d - 6), where `d [R, GROUPS]`
    is its scale minus a reference of its row (d <= 0). The e4m3 bytes of `_e4m3_pairs` become f16
    pairs in one conversion each on Hopper (`cvt.rn.f16x2.e4m3x2`), then one multiply by 2^d:
    exact for d >= -14 (the smallest, 0.5 * 2^-20, is an f16 subnormal), zero below."""
    low, high = _e4m3_pairs(_mx_codes(blocks_ptr, w_rows, w_rows_ok, g0, GROUPS, K), ASM)
    scale = tl.where(d >= -14, (d + 15) << 10, 0).to(tl.uint16).to(tl.float16, bitcast=True)[:, :, None]
    shape: tl.constexpr = (w_rows.shape[0], 16 * GROUPS)
    low = low.to(tl.float8e4nv, bitcast=True).to(tl.float16) * scale
    high = high.to(tl.float8e4nv, bitcast=True).to(tl.float16) * scale
    return tl.reshape(low, shape), tl.reshape(high, shape)


def _gemv_group_asm(x_rows: int, x_pairs: bool = False) -> str:
    """PTX for one weight row's 32-column group (4 words, pack 4) times `x_rows` rows of x, which
    share one unpacking. Operands, 4 each (elements of the pack): the accumulators out, one per x
    row; the accumulators in; the codes; the scale's address; the address of the group's 16 f16
    pairs of each x row (the addresses: element 0 used). Each word's codes become four f16 pairs
    through fp8 (`_e4m3_pairs`' bits); for x row r, out_r[0] = in_r[0] + 2^(s-121) * (the 32
    products summed in f16x2, then float32) and out_r[1..3] = in_r[1..3].

    A word's e4m3 bytes come as columns (0, 2, 4, 6) and (1, 3, 5, 7). Either two byte permutes a
    word put them in x's pair order, (0, 1) .. (6, 7); or, with `x_pairs`, four permutes a word put
    x's pairs in theirs, (0, 2), (4, 6), (1, 3), (5, 7): those depend on x alone, and a thread's
    weight rows in one loop step share its x, so the compiler computes them once for all of them.

    x is read through the coherent path (`ld.global`), the scale through the read-only one
    (`.nc`): with programmatic dependent launch (`pdl.py`) the kernel before may still be writing
    x when this kernel starts, and the read-only cache is meant for data that does not change
    while a kernel runs."""
    outs = 4 * x_rows
    codes, scale, x_addr = 2 * outs, 2 * outs + 4, lambda r: 2 * outs + 8 + 4 * r  # noqa: E731
    body = [
        "{",
        ".reg .b32 a, b, lo, hi, p0, p1, f0, f1, f2, f3, sc;",
        ".reg .b32 " + ", ".join(f"h{r}" for r in range(x_rows)) + ";",
        ".reg .b32 " + ", ".join(f"x{r}_<16>" for r in range(x_rows)) + ";",
        ".reg .b16 q0, q1, q2, q3;",
        ".reg .f32 s0, s1, fs;",
        f"ld.global.nc.u8 sc, [${scale}];",
    ]
    for r in range(x_rows):
        body += [
            f"ld.global.v4.b32 {{x{r}_{4 * i}, x{r}_{4 * i + 1}, x{r}_{4 * i + 2}, x{r}_{4 * i + 3}}}, [${x_addr(r)}+{16 * i}];"
            for i in range(4)
        ]
    if x_pairs:  # each word's pairs (0, 1) (2, 3) (4, 5) (6, 7) -> (0, 2) (4, 6) (1, 3) (5, 7)
        body.append(".reg .b32 " + ", ".join(f"y{r}_<16>" for r in range(x_rows)) + ";")
        for r in range(x_rows):
            for c in range(4):
                x = [f"x{r}_{4 * c + j}" for j in range(4)]
                y = [f"y{r}_{4 * c + j}" for j in range(4)]
                body += [
                    f"prmt.b32 {y[0]}, {x[0]}, {x[1]}, 0x5410;", f"prmt.b32 {y[1]}, {x[2]}, {x[3]}, 0x5410;",
                    f"prmt.b32 {y[2]}, {x[0]}, {x[1]}, 0x7632;", f"prmt.b32 {y[3]}, {x[2]}, {x[3]}, 0x7632;",
                ]  # fmt: skip
    for c in range(4):
        w = f"${codes + c}"
        body += [
            f"shl.b32 a, {w}, 2;", f"shl.b32 b, {w}, 4;", "and.b32 a, a, 0x1C1C1C1C;", "and.b32 b, b, 0x80808080;",
            "or.b32 lo, a, b;",  # e4m3 bytes of the low nibbles: columns 0, 2, 4, 6 of the word
            f"shr.b32 a, {w}, 2;", "and.b32 a, a, 0x1C1C1C1C;", f"and.b32 b, {w}, 0x80808080;",
            "or.b32 hi, a, b;",  # the high nibbles: columns 1, 3, 5, 7
        ]  # fmt: skip
        if x_pairs:
            body += ["mov.b32 {q0, q1}, lo;", "mov.b32 {q2, q3}, hi;"]  # columns (0, 2) (4, 6) (1, 3) (5, 7)
        else:
            body += ["prmt.b32 p0, lo, hi, 0x5140;", "prmt.b32 p1, lo, hi, 0x7362;"]  # columns 0-3, 4-7
            body += ["mov.b32 {q0, q1}, p0;", "mov.b32 {q2, q3}, p1;"]
        body += [
            "cvt.rn.f16x2.e4m3x2 f0, q0;", "cvt.rn.f16x2.e4m3x2 f1, q1;",
            "cvt.rn.f16x2.e4m3x2 f2, q2;", "cvt.rn.f16x2.e4m3x2 f3, q3;",
        ]  # fmt: skip
        for r in range(x_rows):
            x = [f"{'y' if x_pairs else 'x'}{r}_{4 * c + j}" for j in range(4)]
            body += [
                f"mul.rn.f16x2 h{r}, f0, {x[0]};" if c == 0 else f"fma.rn.f16x2 h{r}, f0, {x[0]}, h{r};",
                f"fma.rn.f16x2 h{r}, f1, {x[1]}, h{r};", f"fma.rn.f16x2 h{r}, f2, {x[2]}, h{r};",
                f"fma.rn.f16x2 h{r}, f3, {x[3]}, h{r};",
            ]  # fmt: skip
    body += ["add.u32 sc, sc, 6;", "min.u32 sc, sc, 254;", "shl.b32 sc, sc, 23;", "mov.b32 fs, sc;"]
    for r in range(x_rows):
        body += [
            f"mov.b32 {{q0, q1}}, h{r};", "cvt.f32.f16 s0, q0;", "cvt.f32.f16 s1, q1;", "add.f32 s0, s0, s1;",
            f"fma.rn.f32 ${4 * r}, s0, fs, ${outs + 4 * r};",
            *(f"mov.b32 ${4 * r + j}, ${outs + 4 * r + j};" for j in (1, 2, 3)),
        ]  # fmt: skip
    return "\n".join(body + ["}"])


def _gemv_constraints(x_rows: int) -> str:
    outs = 4 * x_rows
    return ",".join(["=f"] * outs + ["f"] * outs + ["r"] * 4 + ["l"] * (4 + 4 * x_rows))


GEMV_GROUP: tl.constexpr = tl.constexpr(_gemv_group_asm(1))
GEMV_GROUP2: tl.constexpr = tl.constexpr(_gemv_group_asm(2))
GEMV_GROUP_XP: tl.constexpr = tl.constexpr(_gemv_group_asm(1, x_pairs=True))
GEMV_GROUP2_XP: tl.constexpr = tl.constexpr(_gemv_group_asm(2, x_pairs=True))
GEMV_CONSTRAINTS: tl.constexpr = tl.constexpr(_gemv_constraints(1))
GEMV_CONSTRAINTS2: tl.constexpr = tl.constexpr(_gemv_constraints(2))


@triton.jit
def _f16_half(pair, high: tl.constexpr):  # type: ignore[no-untyped-def]
    """The low (or high) f16 of int32 `pair`, in float32."""
    return ((pair >> (16 * high)) & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _gemv_group(acc, codes, s_ptr, x_ptr, ASM: tl.constexpr, X_PAIRS: tl.constexpr = 0):  # type: ignore
    """`acc [R, W]` plus each word of `codes [R, W]` (int32, 8 codes) times its 4 f16 pairs of x
    at `x_ptr` (int32) and its scale at `s_ptr`: by `_gemv_group_asm` (a thread's 4 words are one
    group; `X_PAIRS` its `x_pairs`), or word by word in float32 under the interpreter, from the
    same e4m3 bytes (`_e4m3_pairs`: each code's value times 2^-6)."""
    if ASM:
        return tl.inline_asm_elementwise(
            asm=GEMV_GROUP_XP if X_PAIRS else GEMV_GROUP,
            constraints=GEMV_CONSTRAINTS,
            args=[acc, codes, s_ptr.to(tl.int64, bitcast=True), x_ptr.to(tl.int64, bitcast=True)],
            dtype=tl.float32,
            is_pure=True,
            pack=4,
        )
    part = tl.zeros(acc.shape, dtype=tl.float32)
    for j in tl.static_range(4):  # byte j: columns 2j (low nibble) and 2j + 1
        pair = tl.load(x_ptr + j)
        low, high = _e4m3_pairs(((codes >> (8 * j)) & 0xFF).to(tl.uint8), False)
        part += low.to(tl.float8e4nv, bitcast=True).to(tl.float32) * _f16_half(pair, 0)
        part += high.to(tl.float8e4nv, bitcast=True).to(tl.float32) * _f16_half(pair, 1)
    return acc + part * _pow2(tl.minimum(tl.load(s_ptr).to(tl.int32), 248) - 121)


@triton.jit
def _gemv_group2(acc0, acc1, codes, s_ptr, x0_ptr, x1_ptr, ASM: tl.constexpr, X_PAIRS: tl.constexpr = 0):  # type: ignore
    """`_gemv_group` for two rows of x (`x0_ptr`, `x1_ptr`) at once: the codes unpacked once."""
    if ASM:
        return tl.inline_asm_elementwise(
            asm=GEMV_GROUP2_XP if X_PAIRS else GEMV_GROUP2,
            constraints=GEMV_CONSTRAINTS2,
            args=[
                acc0, acc1, codes, s_ptr.to(tl.int64, bitcast=True),
                x0_ptr.to(tl.int64, bitcast=True), x1_ptr.to(tl.int64, bitcast=True),
            ],
            dtype=(tl.float32, tl.float32),
            is_pure=True,
            pack=4,
        )  # fmt: skip
    return _gemv_group(acc0, codes, s_ptr, x0_ptr, False), _gemv_group(acc1, codes, s_ptr, x1_ptr, False)


@triton.jit
def _pow2(exponent):  # type: ignore[no-untyped-def]
    """2^exponent in float32 for int32 exponents, clamped to the normal range (-126 .. 127)."""
    return ((tl.minimum(tl.maximum(exponent, -126), 127) + 127) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _expert_rows(offsets_ptr, e):  # type: ignore[no-untyped-def]
    """First and past-the-end row of expert e (`offsets`: cumulative row ends)."""
    end = tl.load(offsets_ptr + e)
    return tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0), end


@triton.jit
def _row_tile(offsets_ptr, t, experts, EXPERTS_P2: tl.constexpr, BLOCK_M: tl.constexpr):  # type: ignore
    """Row tile t of all the experts' tiles of BLOCK_M rows, in expert order: its expert e, first
    row and past-the-end row (at most BLOCK_M rows). Past the last tile: no rows."""
    idx = tl.arange(0, EXPERTS_P2)
    ok = idx < experts
    ends = tl.load(offsets_ptr + idx, mask=ok, other=0)
    starts = tl.load(offsets_ptr + idx - 1, mask=ok & (idx > 0), other=0)
    tiles = tl.where(ok, tl.cdiv(ends - starts, BLOCK_M), 0)
    through = tl.cumsum(tiles, 0)  # the tiles of experts 0..i
    e = tl.sum((through <= t).to(tl.int32))  # the first expert whose tiles reach past t
    mine = idx == e
    m0 = tl.sum(tl.where(mine, starts + (t - (through - tiles)) * BLOCK_M, 0))
    end = tl.sum(tl.where(mine, ends, 0))
    return e, m0, tl.minimum(end, m0 + BLOCK_M)


@triton.jit
def _program_rows(offsets_ptr, experts, EXPERTS_P2: tl.constexpr, BLOCK_M: tl.constexpr, ROW_TILES: tl.constexpr):  # type: ignore
    """The expert and rows (first, past the end) of this program: with `ROW_TILES` one row tile
    (`_row_tile`), else every row of expert program_id(0)."""
    if ROW_TILES:
        e, m0, end = _row_tile(offsets_ptr, tl.program_id(0), experts, EXPERTS_P2, BLOCK_M)
    else:
        e = tl.program_id(0)
        m0, end = _expert_rows(offsets_ptr, e)
    return e, m0, end


@triton.jit
def _grouped_kernel(
    x_ptr,
    out_ptr,
    offsets_ptr,
    w_ptr,
    scales_ptr,
    experts,
    K: tl.constexpr,
    N: tl.constexpr,
    stride_xm,
    stride_om,
    stride_we,
    stride_wk,
    stride_wn,
    MX: tl.constexpr,
    LUT: tl.constexpr,
    F16: tl.constexpr,
    EXPERTS_P2: tl.constexpr,
    ROW_TILES: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SPLIT_X: tl.constexpr,
    W_AS_A: tl.constexpr,
):
    """`out = x @ W` per expert. MXFP4 with x in bf16 (`F16` false): the weights unpacked to bf16
    (`_mx_tile`), exact. With x in f16: through fp8 (`_mx_tile_f16`); each loop step takes its
    weight row's largest scale r over the step's groups as the reference, starts its dot from zero
    and adds it to the accumulator times 2^(r - 121) (r - 127 for the scale, + 6 for the e4m3
    offset), so the f16 weights are exact for any scale but blocks more than 14 binades below their
    row's largest in the same step (which come out as zero).

    The even and the odd columns of x meet the low and the high nibbles in two dots. With
    `SPLIT_X` x comes in `evens_then_odds` order, so each is one contiguous load, instead of one
    load split apart in registers. With `W_AS_A` (bf16 x) the dots take the unpacked tile as their
    left operand (out^T = W x^T), which Hopper's wgmma reads from registers, instead of storing it
    transposed to shared memory."""
    e, m0, end = _program_rows(offsets_ptr, experts, EXPERTS_P2, BLOCK_M, ROW_TILES)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_t = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)  # with W_AS_A
        if MX:  # weight rows are output columns; each step fetches the next step's scales
            s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, 0, BLOCK_K // 32, K)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            k_ok = k < K
            if MX and SPLIT_X:  # x's columns in `evens_then_odds` order: two plain loads
                half = x_ptr + rows[:, None] * stride_xm + (k0 + tl.arange(0, BLOCK_K // 2))[None, :]
                x_even = tl.load(half, mask=row_ok[:, None], other=0.0)
                x_odd = tl.load(half + BLOCK_K // 2, mask=row_ok[:, None], other=0.0)
            else:
                x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            if MX:
                s = s_next
                s_next = _mx_scales(scales_ptr, e * N + cols, col_ok, (k0 + BLOCK_K) // 32, BLOCK_K // 32, K)
                if not SPLIT_X:
                    x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
                if F16:
                    s = _clamped(s)
                    r = tl.max(s, axis=1)
                    w_even, w_odd = _mx_tile_f16(w_ptr, s - r[:, None], e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, LUT)
                    part = tl.dot(x_even, tl.trans(w_even))
                    part = tl.dot(x_odd, tl.trans(w_odd), part)
                    acc += part * _pow2(r - 121)[None, :]
                else:
                    w_even, w_odd = _mx_tile(w_ptr, s, e * N + cols, col_ok, k0 // 32, BLOCK_K // 32, K, LUT)
                    if W_AS_A:  # out^T = W x^T
                        acc_t = tl.dot(w_even.to(x_even.dtype), tl.trans(x_even), acc_t)
                        acc_t = tl.dot(w_odd.to(x_even.dtype), tl.trans(x_odd), acc_t)
                    else:
                        acc = tl.dot(x_even, tl.trans(w_even).to(x_even.dtype), acc)
                        acc = tl.dot(x_odd, tl.trans(w_odd).to(x_even.dtype), acc)
            else:
                w = tl.load(
                    w_ptr + e * stride_we + k[:, None] * stride_wk + cols[None, :] * stride_wn,
                    mask=k_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                acc += tl.dot(x, w)
        if MX and W_AS_A and not F16:
            acc = tl.trans(acc_t)
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


@triton.jit
def _mx_gemv_kernel(
    x_ptr,
    out_ptr,
    offsets_ptr,
    w_ptr,
    scales_ptr,
    K: tl.constexpr,
    N: tl.constexpr,
    stride_xm,
    stride_om,
    ASM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    K_STAGES: tl.constexpr,
    X_PAIRS: tl.constexpr,
    PDL: tl.constexpr,
):
    """`out = x @ W` per expert on the CUDA cores: `x` the int32 view of f16 x `[P, K / 2]`, `w` the
    int32 view of the blocks `[E * N, K / 8]` (word j of a row holds columns 8j .. 8j + 7, low
    nibble first). Each thread takes 4 consecutive words (one scale group) of its weight rows;
    past K, masked words read the row's last group again, times zero. An expert's rows go two at a
    time while two remain (`_gemv_group2`: the codes unpacked once for both), then one. `K_STAGES`
    above 1: Triton loads the codes of the next column steps (into registers, as compiled for sm_90)
    while the present one is multiplied. `X_PAIRS`: `_gemv_group_asm`'s `x_pairs`. `PDL`: `pdl.start`."""
    pdl.start(PDL)
    e = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    w_rows = (e * N + n).to(tl.int64)
    m0, end = _expert_rows(offsets_ptr, e)
    words = tl.arange(0, BLOCK_K // 8)
    while m0 < end:
        pair = m0 + 1 < end
        m1 = m0 + 1  # read only when `pair`
        acc0 = tl.zeros((BLOCK_N, BLOCK_K // 8), dtype=tl.float32)
        acc1 = tl.zeros((BLOCK_N, BLOCK_K // 8), dtype=tl.float32)
        for k0 in tl.range(0, K, BLOCK_K, num_stages=K_STAGES):
            word = k0 // 8 + words
            ok = n_ok[:, None] & (word < K // 8)[None, :]
            codes = tl.load(w_ptr + w_rows[:, None] * (K // 8) + word[None, :], mask=ok, other=0)
            inside = tl.where(word < K // 8, word, K // 8 - 4)  # masked: the last group, whose x is in the row
            s_ptr = scales_ptr + w_rows[:, None] * (K // 32) + (inside // 4)[None, :]
            x0 = tl.broadcast_to((x_ptr + m0 * stride_xm + inside * 4)[None, :], codes.shape)
            if pair:
                x1 = tl.broadcast_to((x_ptr + m1 * stride_xm + inside * 4)[None, :], codes.shape)
                acc0, acc1 = _gemv_group2(acc0, acc1, codes, s_ptr, x0, x1, ASM, X_PAIRS)
            else:
                acc0 = _gemv_group(acc0, codes, s_ptr, x0, ASM, X_PAIRS)
        tl.store(out_ptr + m0 * stride_om + n, tl.sum(acc0, axis=1).to(out_ptr.dtype.element_ty), mask=n_ok)
        if pair:
            tl.store(out_ptr + m1 * stride_om + n, tl.sum(acc1, axis=1).to(out_ptr.dtype.element_ty), mask=n_ok)
        m0 += 1 + pair.to(tl.int32)


@triton.jit
def _grouped_mx_t_kernel(
    dy_ptr,
    out_ptr,
    offsets_ptr,
    blocks_ptr,
    scales_ptr,
    experts,
    K: tl.constexpr,
    N: tl.constexpr,
    stride_dm,
    stride_om,
    LUT: tl.constexpr,
    EXPERTS_P2: tl.constexpr,
    ROW_TILES: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    """`out [P, K] = dy [P, N] @ W [N, K]` per expert, W in MXFP4; a program owns BLOCK_C
    input columns (BLOCK_C / 32 scale groups of each weight row) and reduces over the N rows."""
    e, m0, end = _program_rows(offsets_ptr, experts, EXPERTS_P2, BLOCK_M, ROW_TILES)
    g0 = tl.program_id(1) * (BLOCK_C // 32)
    c = g0 * 32 + tl.arange(0, BLOCK_C)  # columns of out
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        even = tl.zeros((BLOCK_M, BLOCK_C // 2), dtype=tl.float32)
        odd = tl.zeros((BLOCK_M, BLOCK_C // 2), dtype=tl.float32)
        r = tl.arange(0, BLOCK_R)
        s_next = _mx_scales(scales_ptr, e * N + r, r < N, g0, BLOCK_C // 32, K)
        for r0 in range(0, N, BLOCK_R):
            r = r0 + tl.arange(0, BLOCK_R)
            r_ok = r < N
            s = s_next
            s_next = _mx_scales(scales_ptr, e * N + r + BLOCK_R, r + BLOCK_R < N, g0, BLOCK_C // 32, K)
            w_even, w_odd = _mx_tile(blocks_ptr, s, e * N + r, r_ok, g0, BLOCK_C // 32, K, LUT)
            dy = tl.load(
                dy_ptr + rows[:, None] * stride_dm + r[None, :], mask=row_ok[:, None] & r_ok[None, :], other=0.0
            )
            even = tl.dot(dy, w_even.to(dy.dtype), even)
            odd = tl.dot(dy, w_odd.to(dy.dtype), odd)
        out = out_ptr + rows[:, None] * stride_om + c[None, :]
        tl.store(out, tl.interleave(even, odd).to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & (c < K)[None, :])
        m0 += BLOCK_M


@triton.jit
def _dequantize_kernel(
    blocks_ptr,
    scales_ptr,
    experts_ptr,
    out_ptr,
    rows,
    K: tl.constexpr,
    N: tl.constexpr,
    LUT: tl.constexpr,
    BLOCK_R: tl.constexpr,
    GROUPS: tl.constexpr,
):
    """Rows of the experts listed in `experts_ptr` to `out [len, N, K]`: a program unpacks
    BLOCK_R weight rows x GROUPS scale groups and stores each row's 32 GROUPS values at once."""
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # row in out, viewed as [len * N, K]
    r_ok = r < rows
    expert = tl.load(experts_ptr + r // N, mask=r_ok, other=0).to(tl.int64)
    w_rows, g0 = expert * N + r % N, tl.program_id(1) * GROUPS
    s = _mx_scales(scales_ptr, w_rows, r_ok, g0, GROUPS, K)
    even, odd = _mx_tile(blocks_ptr, s, w_rows, r_ok, g0, GROUPS, K, LUT)
    c = tl.program_id(1) * (32 * GROUPS) + tl.arange(0, 32 * GROUPS)
    out = out_ptr + r[:, None].to(tl.int64) * K + c[None, :]
    tl.store(out, tl.interleave(even, odd).to(out_ptr.dtype.element_ty), mask=r_ok[:, None] & (c < K)[None, :])


def dequantize_experts(
    blocks: torch.Tensor, scales: torch.Tensor, experts: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """`blocks [E, N, K/32, 16]`, `scales [E, N, K/32]` of the experts `experts [R]` to `[R, N, K]`:
    the same values as `mxfp4_experts.dequantize` (for scales in 2..252, see the module doc). All 32
    experts of gpt-oss-20b's gate_up move 2.7 TB/s (read + written) on an H200, whose copy ceiling is
    4.2 (`explore_dequant.py`, bench/RESULTS.md: 2.2 with 64 rows x 4 groups a program)."""
    n, k = blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((experts.shape[0], n, k), dtype=dtype, device=blocks.device)
    rows, block_r, groups = experts.shape[0] * n, 16, 8  # 2 KB read, 8 KB written (bf16) a program
    grid = (triton.cdiv(rows, block_r), triton.cdiv(k // 32, groups))
    _dequantize_kernel[grid](
        blocks.contiguous(), scales.contiguous(), experts.contiguous(), out, rows, k, n, _compiled(),
        BLOCK_R=block_r, GROUPS=groups, num_warps=4,
    )  # fmt: skip
    return out


RowClass = Literal["decode", "many"]


def _row_class(rows: int, experts: int) -> RowClass:
    """"decode" for at most 16 rows an expert on average, else "many" (prefill, training)."""
    return "decode" if rows <= 16 * experts else "many"


TILES: dict[tuple[str, RowClass], dict[str, int]] = {
    ("dense", "decode"): dict(BLOCK_M=16, BLOCK_N=128, BLOCK_K=128, num_warps=4, num_stages=4),
    ("dense", "many"): dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=3),
    ("mx", "decode"): dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3),
    ("mx", "many"): dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, ROW_TILES=1, num_warps=4, num_stages=3),
    ("mx_f16", "decode"): dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=3),
    ("mx_f16", "many"): dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=3),
    ("mx_t", "decode"): dict(BLOCK_M=16, BLOCK_C=128, BLOCK_R=128, num_warps=4, num_stages=3),
    ("mx_t", "many"): dict(BLOCK_M=128, BLOCK_C=128, BLOCK_R=64, ROW_TILES=1, num_warps=4, num_stages=3),
    ("mx_gemv", "decode"): dict(BLOCK_N=32, BLOCK_K=1024, X_PAIRS=1, num_warps=4),
}
"""Launch settings per (kernel, row class). Options, off unless set here: `ROW_TILES`, one row
tile a program (`_row_tile`) instead of one expert's rows; `SPLIT_X` and `W_AS_A` (`mx`, see
`_grouped_kernel`); `K_STAGES` above 1 (`mx_gemv`), its column loop pipelined; `X_PAIRS` (`mx_gemv`,
`_gemv_group_asm`'s `x_pairs`). The last four came on 2026-12-06 and 12-07 from reading the kernels
compiled for sm_90 (bench/RESULTS.md); `tune_kernels.py` tries them. `X_PAIRS` is on: 126.6 against
127.8-128.6 us (H100, 2026-12-07); `K_STAGES` 2 and 3 were slower there (137.9 us or more). `SPLIT_X`
and `W_AS_A` were slower too, in the many-row `mx` kernel at 2 800 tokens (H100, 2026-12-07: 1.97
ms without either, 2.00 with both, 2.13 and 2.22 with one). `ROW_TILES` is on for the many-row
MXFP4 kernels: the update with `kl` 0.496 -> 0.426 s through the engine (H100, 2026-12-07), and
their GPU test passed with it.
The many-row MXFP4 tiles are `tune_kernels.py --tokens` picks on an H100 (2026-12-06, bench/RESULTS.md): at 2 800 and 600 tokens, `mx` 2.87 -> 2.12 and
0.92 -> 0.67 ms (gate_up + down), `mx_t` 3.40 -> 2.28 and 1.06 -> 0.69 ms, against 64-row tiles.
For `mx` the tuner's first pick (BLOCK_N 256, 8 warps) was 3-5% faster alone (2.06 and 0.63 ms);
the step was measured with these tiles, and that pick waits for a run of the step. (It does fit
small GPUs: 32 KB of shared memory compiled for sm_90 by Triton 3.9, against 16 KB for these.)
The decode tiles (16 rows) are `tune_kernels.py`'s picks
on an H200 (2026-11-21, bench/RESULTS.md): gate_up + down 342 -> 335 us dense, 655 -> 578 us for
the transposed MXFP4 kernel; the MXFP4 kernel kept its tiles, with `tl.dot_scaled` and again with
the byte tables (281 us). The fp8 path (`mx_f16`) keeps the byte tables' tiles: tune_kernels.py
picked BLOCK_N 128 (259.5 against 269.0 us, each call timed with its launch) and MXFP4 generate
went 1.225 -> 1.296 s with it in bench_step.py (H200, 2026-11-22). `bench_step.py --tune` tunes
again for the GPU it runs on. `mx_gemv`: the pick of 32 settings by `explore_gemv.py` (commit 95705a8; H200,
2026-11-22: 136.4 us, the next 147.0), again with rows two at a time (`explore_gemv2.py`, commit b0eb79d:
114.0 us, BLOCK_N 16 120.8, 64 148.8; with x in pair order, BLOCK_K 512 and 8 warps were slower
too)."""

OPTIONS: dict[str, dict[str, int]] = {
    **{kind: dict(ROW_TILES=0, SPLIT_X=0, W_AS_A=0) for kind in ("dense", "mx", "mx_f16")},  # `_grouped_kernel`
    "mx_t": dict(ROW_TILES=0),
    "mx_gemv": dict(K_STAGES=1, X_PAIRS=0),
}
"""Each kernel's options, off: what a `TILES` entry (or a tuner's pick) leaves out."""


def _tiles(kind: str, rows: RowClass) -> dict[str, int]:
    """The launch settings of `kind` for `rows`: `TILES`' entry over `OPTIONS`' defaults."""
    return {**OPTIONS[kind], **TILES[kind, rows]}


GEMV_ROWS_PER_EXPERT = 2
"""The most rows an expert on average (f16 x, MXFP4) for which `grouped_linear` takes the CUDA-core
kernel; it unpacks each expert's weights once per two rows, the tensor-core kernel once per 16-row
tile."""


def grouped_linear(
    x: torch.Tensor,
    offsets: torch.Tensor,
    weight: torch.Tensor | None = None,
    blocks: torch.Tensor | None = None,
    scales: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """`x [P, K]` sorted by expert times each row's expert weight: `weight [E, K, N]` (dense) or
    `blocks [E, N, K/32, 16]` and `scales [E, N, K/32]` (MXFP4). Returns `[P, N]` in `out_dtype`
    (default x's). MXFP4 with x in f16 unpacks through fp8 (GPUs of compute capability 8.9 and up,
    see `_grouped_kernel`; on the CUDA cores for a few rows an expert, `_mx_gemv_kernel`); x in
    bf16 or float32, by byte tables."""
    x = x.contiguous()
    mx = weight is None
    if mx:
        assert blocks is not None and scales is not None
        experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
        w, s = blocks.contiguous(), scales.contiguous()
        strides = (0, 0, 0)  # unused: the blocks' layout is fixed
    else:
        assert weight is not None
        experts, k, n = weight.shape
        w, s = weight, weight  # scales unused
        strides = (weight.stride(0), weight.stride(1), weight.stride(2))
    assert x.shape[1] == k, f"x has {x.shape[1]} columns, the weight {k}"
    out = torch.empty((x.shape[0], n), dtype=out_dtype or x.dtype, device=x.device)
    f16 = mx and x.dtype == torch.float16
    # 16-byte loads: of x by the kernel's assembly; of the codes, for Triton to give each thread a
    # whole scale group (4 consecutive words), which the assembly takes as its pack of 4
    aligned = x.data_ptr() % 16 == 0 and w.data_ptr() % 16 == 0
    if f16 and x.shape[0] <= GEMV_ROWS_PER_EXPERT * experts and aligned:
        tiles = _tiles("mx_gemv", "decode")
        _mx_gemv_kernel[(experts, triton.cdiv(n, tiles["BLOCK_N"]))](
            x.view(torch.int32), out, offsets, w.view(torch.int32), s, k, n, x.stride(0) // 2, out.stride(0),
            ASM=_compiled(), **pdl.launch_options(x.device, "experts"), **tiles,
        )  # fmt: skip
        return out
    tiles = _tiles("mx_f16" if f16 else "mx" if mx else "dense", _row_class(x.shape[0], experts))
    if mx and tiles["SPLIT_X"]:
        x = evens_then_odds(x, tiles["BLOCK_K"])
    grid = (_row_programs(x.shape[0], experts, tiles), triton.cdiv(n, tiles["BLOCK_N"]))
    _grouped_kernel[grid](
        x, out, offsets, w, s, experts, k, n, x.stride(0), out.stride(0), *strides,
        MX=mx, LUT=_compiled(), F16=f16, EXPERTS_P2=triton.next_power_of_2(experts), **tiles,
    )  # fmt: skip
    return out


def grouped_linear_t(
    dy: torch.Tensor, offsets: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor
) -> torch.Tensor:
    """`dy [P, N]` sorted by expert times each row's MXFP4 weight `[N, K]` (not transposed):
    the gradient of `grouped_linear` with respect to x. Returns `[P, K]`."""
    dy = dy.contiguous()
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    assert dy.shape[1] == n
    out = torch.empty((dy.shape[0], k), dtype=dy.dtype, device=dy.device)
    tiles = _tiles("mx_t", _row_class(dy.shape[0], experts))
    grid = (_row_programs(dy.shape[0], experts, tiles), triton.cdiv(k, tiles["BLOCK_C"]))
    _grouped_mx_t_kernel[grid](
        dy, out, offsets, blocks.contiguous(), scales.contiguous(), experts, k, n, dy.stride(0), out.stride(0),
        _compiled(), EXPERTS_P2=triton.next_power_of_2(experts), **tiles,
    )  # fmt: skip
    return out


def evens_then_odds(x: torch.Tensor, block: int) -> torch.Tensor:
    """`x [P, K]` with its columns zero-padded to a multiple of `block` and reordered block by
    block: each block's even columns, then its odd ones (`_grouped_kernel`'s `SPLIT_X`)."""
    rows, k = x.shape
    padded = F.pad(x, (0, -k % block))
    return padded.view(rows, -1, block // 2, 2).transpose(2, 3).reshape(rows, -1)


def _row_programs(rows: int, experts: int, tiles: dict[str, int]) -> int:
    """Programs along the rows: one per expert, or with `ROW_TILES` one per row tile, at most
    rows / BLOCK_M + one partial tile per expert (fixed for a given row count: CUDA graphs)."""
    return triton.cdiv(rows, tiles["BLOCK_M"]) + experts if tiles["ROW_TILES"] else experts


def _compiled() -> bool:
    """Whether the kernels are compiled for the GPU (not run by the CPU interpreter)."""
    return os.environ.get("TRITON_INTERPRET") != "1"
