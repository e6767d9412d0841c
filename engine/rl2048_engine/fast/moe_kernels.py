"""Triton kernels for the routed experts: one program per (expert, column block).

`grouped_linear(x, offsets, ...)` is `F.grouped_mm(x, W, offs=offsets)` for `x [P, K]` rows
sorted by expert (`offsets [E]`: cumulative row ends, as grouped_mm takes them). The grid is
`(E, N / BLOCK_N)` whatever the routing, so a call has fixed launch shapes and can sit in a
CUDA graph; the program of an expert no row was routed to loads two offsets and stops, so each
routed expert's weights are read once and the others never.

- dense weights `W [E, K, N]` (bf16 gpt-oss experts as transformers stores them);
- MXFP4 weights as gpt-oss ships them, `blocks [E, N, K/32, 16]` (two e2m1 codes a byte, low
  nibble first) and `scales [E, N, K/32]` (e8m0): each tile is unpacked in registers and
  multiplied at once, so no bf16 copy of an expert ever exists. Even and odd input columns are
  the low and high nibbles: the kernel takes two dots, with the even and the odd columns of x.

`grouped_linear_t` is the product with the transposed MXFP4 weight (`dy [P, N] @ W [N, K]`),
the backward pass to the input. `dequantize_experts` unpacks chosen experts at memory speed,
for the many-row products (prefill, training) that grouped_mm does better than these kernels. Tile sizes follow the rows per expert: 16-row tiles for decode
(a few rows an expert, bandwidth-bound), 64 for prefill and training.
Runs on CUDA, or on the CPU under `TRITON_INTERPRET=1` (the tests check the math that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fp4(code):  # type: ignore[no-untyped-def]
    """e2m1 code (0..15) to its value: bit 3 sign, bits 1-2 exponent, bit 0 mantissa."""
    mag = code & 7
    exp = (mag >> 1).to(tl.float32)
    man = (mag & 1).to(tl.float32)
    value = tl.where(exp == 0.0, 0.5 * man, (1.0 + 0.5 * man) * tl.exp2(exp - 1.0))
    return tl.where((code & 8) != 0, -value, value)


@triton.jit
def _grouped_kernel(
    x_ptr,
    out_ptr,
    offsets_ptr,
    w_ptr,
    scales_ptr,
    K: tl.constexpr,
    N: tl.constexpr,
    stride_xm,
    stride_om,
    stride_we,
    stride_wk,
    stride_wn,
    MX: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    e = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    end = tl.load(offsets_ptr + e)
    start = tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0)
    m0 = start
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            if MX:
                # bytes j of this k block hold input columns k0 + 2j (low) and k0 + 2j + 1 (high)
                j = k0 // 2 + tl.arange(0, BLOCK_K // 2)
                j_ok = j < K // 2
                ok = j_ok[:, None] & col_ok[None, :]
                packed = tl.load(w_ptr + e * stride_we + cols[None, :] * (K // 2) + j[:, None], mask=ok, other=0)
                s = tl.load(scales_ptr + (e * N + cols[None, :]) * (K // 32) + j[:, None] // 16, mask=ok, other=127)
                scale = tl.exp2(s.to(tl.float32) - 127.0)
                w_lo = (_fp4(packed & 15) * scale).to(x_ptr.dtype.element_ty)
                w_hi = (_fp4(packed >> 4) * scale).to(x_ptr.dtype.element_ty)
                x_rows = x_ptr + rows[:, None] * stride_xm + 2 * j[None, :]
                x_ok = row_ok[:, None] & j_ok[None, :]
                x_even = tl.load(x_rows, mask=x_ok, other=0.0)
                x_odd = tl.load(x_rows + 1, mask=x_ok, other=0.0)
                acc += tl.dot(x_even, w_lo)
                acc += tl.dot(x_odd, w_hi)
            else:
                k = k0 + tl.arange(0, BLOCK_K)
                k_ok = k < K
                w = tl.load(
                    w_ptr + e * stride_we + k[:, None] * stride_wk + cols[None, :] * stride_wn,
                    mask=k_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                x = tl.load(x_ptr + rows[:, None] * stride_xm + k[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                acc += tl.dot(x, w)
        out = out_ptr + rows[:, None] * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        m0 += BLOCK_M


@triton.jit
def _grouped_mx_t_kernel(
    dy_ptr,
    out_ptr,
    offsets_ptr,
    blocks_ptr,
    scales_ptr,
    K: tl.constexpr,
    N: tl.constexpr,
    stride_dm,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    """`out [P, K] = dy [P, N] @ W [N, K]` per expert, W in MXFP4; a program owns BLOCK_C
    input columns (BLOCK_C / 2 bytes of each weight row) and reduces over the N rows."""
    e = tl.program_id(0)
    j = tl.program_id(1) * (BLOCK_C // 2) + tl.arange(0, BLOCK_C // 2)  # byte index in a row
    j_ok = j < K // 2
    end = tl.load(offsets_ptr + e)
    start = tl.where(e > 0, tl.load(offsets_ptr + tl.maximum(e - 1, 0)), 0)
    m0 = start
    while m0 < end:
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        even = tl.zeros((BLOCK_M, BLOCK_C // 2), dtype=tl.float32)
        odd = tl.zeros((BLOCK_M, BLOCK_C // 2), dtype=tl.float32)
        for r0 in range(0, N, BLOCK_R):
            r = r0 + tl.arange(0, BLOCK_R)
            r_ok = r < N
            ok = r_ok[:, None] & j_ok[None, :]
            packed = tl.load(blocks_ptr + (e * N + r[:, None]) * (K // 2) + j[None, :], mask=ok, other=0)
            s = tl.load(scales_ptr + (e * N + r[:, None]) * (K // 32) + j[None, :] // 16, mask=ok, other=127)
            scale = tl.exp2(s.to(tl.float32) - 127.0)
            w_lo = (_fp4(packed & 15) * scale).to(dy_ptr.dtype.element_ty)
            w_hi = (_fp4(packed >> 4) * scale).to(dy_ptr.dtype.element_ty)
            dy = tl.load(dy_ptr + rows[:, None] * stride_dm + r[None, :], mask=row_ok[:, None] & r_ok[None, :], other=0.0)
            even += tl.dot(dy, w_lo)
            odd += tl.dot(dy, w_hi)
        out = out_ptr + rows[:, None] * stride_om + 2 * j[None, :]
        ok = row_ok[:, None] & j_ok[None, :]
        tl.store(out, even.to(out_ptr.dtype.element_ty), mask=ok)
        tl.store(out + 1, odd.to(out_ptr.dtype.element_ty), mask=ok)
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
    BLOCK_R: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    """Rows of the experts listed in `experts_ptr` to `out [len, N, K]`: a program unpacks
    BLOCK_R weight rows x BLOCK_J bytes (2 x BLOCK_J values each)."""
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # row in out, viewed as [len * N, K]
    j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    r_ok = r < rows
    expert = tl.load(experts_ptr + r // N, mask=r_ok, other=0).to(tl.int64)
    source = expert * N + r % N  # row in blocks, viewed as [E * N, K / 2]
    ok = r_ok[:, None] & (j < K // 2)[None, :]
    packed = tl.load(blocks_ptr + source[:, None] * (K // 2) + j[None, :], mask=ok, other=0)
    s = tl.load(scales_ptr + source[:, None] * (K // 32) + j[None, :] // 16, mask=ok, other=127)
    scale = tl.exp2(s.to(tl.float32) - 127.0)
    out = out_ptr + r[:, None].to(tl.int64) * K + 2 * j[None, :]
    tl.store(out, (_fp4(packed & 15) * scale).to(out_ptr.dtype.element_ty), mask=ok)
    tl.store(out + 1, (_fp4(packed >> 4) * scale).to(out_ptr.dtype.element_ty), mask=ok)


def dequantize_experts(
    blocks: torch.Tensor, scales: torch.Tensor, experts: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """`blocks [E, N, K/32, 16]`, `scales [E, N, K/32]` of the experts `experts [R]` to `[R, N, K]`:
    the same values as `mxfp4_experts.dequantize`, at the speed of the memory."""
    n, k = blocks.shape[1], blocks.shape[2] * 32
    out = torch.empty((experts.shape[0], n, k), dtype=dtype, device=blocks.device)
    rows, block_r, block_j = experts.shape[0] * n, 32, 64
    grid = (triton.cdiv(rows, block_r), triton.cdiv(k // 2, block_j))
    _dequantize_kernel[grid](
        blocks.contiguous(), scales.contiguous(), experts.contiguous(), out, rows, k, n, BLOCK_R=block_r, BLOCK_J=block_j
    )
    return out


def _rows_tile(rows: int, experts: int) -> int:
    return 16 if rows <= 16 * experts else 64


def grouped_linear(
    x: torch.Tensor,
    offsets: torch.Tensor,
    weight: torch.Tensor | None = None,
    blocks: torch.Tensor | None = None,
    scales: torch.Tensor | None = None,
) -> torch.Tensor:
    """`x [P, K]` sorted by expert times each row's expert weight: `weight [E, K, N]` (dense) or
    `blocks [E, N, K/32, 16]` and `scales [E, N, K/32]` (MXFP4). Returns `[P, N]` in x's dtype."""
    x = x.contiguous()
    mx = weight is None
    if mx:
        assert blocks is not None and scales is not None
        experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
        w, s = blocks.contiguous(), scales.contiguous()
        strides = (n * k // 2, 0, 0)
    else:
        assert weight is not None
        experts, k, n = weight.shape
        w, s = weight, weight  # scales unused
        strides = (weight.stride(0), weight.stride(1), weight.stride(2))
    assert x.shape[1] == k, f"x has {x.shape[1]} columns, the weight {k}"
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    block_m = _rows_tile(x.shape[0], experts)
    block_n = 64 if block_m == 16 else 128
    grid = (experts, triton.cdiv(n, block_n))
    _grouped_kernel[grid](
        x, out, offsets, w, s, k, n, x.stride(0), out.stride(0), *strides,
        MX=mx, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=128 if block_m == 16 else 64,
        num_warps=4, num_stages=3,
    )  # fmt: skip
    return out


def grouped_linear_t(dy: torch.Tensor, offsets: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """`dy [P, N]` sorted by expert times each row's MXFP4 weight `[N, K]` (not transposed):
    the gradient of `grouped_linear` with respect to x. Returns `[P, K]`."""
    dy = dy.contiguous()
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    assert dy.shape[1] == n
    out = torch.empty((dy.shape[0], k), dtype=dy.dtype, device=dy.device)
    block_m = _rows_tile(dy.shape[0], experts)
    block_c = 128
    grid = (experts, triton.cdiv(k, block_c))
    _grouped_mx_t_kernel[grid](
        dy, out, offsets, blocks.contiguous(), scales.contiguous(), k, n, dy.stride(0), out.stride(0),
        BLOCK_M=block_m, BLOCK_C=block_c, BLOCK_R=64, num_warps=4, num_stages=3,
    )  # fmt: skip
    return out
