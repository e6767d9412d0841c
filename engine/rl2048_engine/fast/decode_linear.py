"""The attention projections of a decode step in one Triton kernel: `x @ W.T + b` for a few rows.

A decode step of gpt-oss-20b multiplies 8 rows by each layer's q/k/v weight (5 120 x 2 880, stacked)
and o weight (2 880 x 4 096): reading the weights is all the work. cuBLAS tiles them 64 output
columns a program, so q/k/v runs 80 programs on the H100's 132 SMs (2.3 TB/s of weights) and o
45, split along K with a second reduction kernel (1.8 TB/s; `profile_mxfp4_h100.json`). Here each
program takes `BLOCK_N` output columns (weight rows) over all of K, its tiles loaded ahead by
Triton's pipeline, x's rows padded to the dot's 16, float32 sums, the bias added before rounding.

`linear_rows` is a `torch.library` custom op, so `torch.compile` calls it inside the compiled
layer. Runs on CUDA, or on the CPU under `TRITON_INTERPRET=1` (the tests check it that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl

MAX_ROWS = 16
"""The most rows `linear_rows` takes (one dot tile); `forward.attention` uses it up to this many."""

TILES = dict(BLOCK_N=16, BLOCK_K=256, num_warps=4, num_stages=4)
"""Launch settings."""


@triton.jit
def _linear_rows_kernel(
    x_ptr,  # [M, K]
    w_ptr,  # [N, K]
    b_ptr,  # [N] (unused without HAS_BIAS)
    out_ptr,  # [M, N]
    M,
    N: tl.constexpr,
    K: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PDL: tl.constexpr,
):
    pdl.start(PDL)
    m = tl.arange(0, 16)
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((16, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + m[:, None] * K + k[None, :], mask=(m < M)[:, None] & (k < K)[None, :], other=0.0)
        w = tl.load(w_ptr + n[:, None] * K + k[None, :], mask=(n < N)[:, None] & (k < K)[None, :], other=0.0)
        acc = tl.dot(x, tl.trans(w), acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n < N, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m[:, None] * N + n[None, :], acc.to(out_ptr.dtype.element_ty), mask=(m < M)[:, None] & (n < N)[None, :])


@torch.library.custom_op("rl2048::linear_rows", mutates_args=())
def linear_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for `x [..., K]` of at most `MAX_ROWS` rows, in x's dtype."""
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    n, k = weight.shape
    assert rows.shape[0] <= MAX_ROWS and rows.shape[1] == k, (rows.shape, weight.shape)
    out = torch.empty((rows.shape[0], n), dtype=x.dtype, device=x.device)
    _linear_rows_kernel[(triton.cdiv(n, TILES["BLOCK_N"]),)](
        rows, weight.contiguous(), weight if bias is None else bias, out, rows.shape[0], n, k,
        HAS_BIAS=bias is not None, **TILES, **pdl.launch_options(x.device, "projections"),
    )  # fmt: skip
    return out.view(*x.shape[:-1], n)


@linear_rows.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))
