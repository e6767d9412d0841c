"""Linear layers of a few rows (decode) as one Triton kernel: `x [M, K] @ W [N, K]^T + b`.

A decode step multiplies 8 rows by each attention projection. cuBLAS runs such a GEMM as a
split-K kernel and a reduction kernel: two launches, and 2.1-2.9 TB/s on gpt-oss-20b's shapes.
Here one program per BLOCK_N output columns (and 16 rows) streams its weight rows once along K,
accumulates in float32 on the tensor cores, and adds the bias before rounding once, as cuBLAS's
bias epilogue does: one launch a projection.

`few_rows_linear` is a `torch.library` custom op, so the compiled decode layer calls it as an
opaque kernel and the CUDA graph captures it. Runs on CUDA, or on the CPU under
`TRITON_INTERPRET=1` (the tests check it that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_K = 16, 128


@triton.jit
def _few_rows_linear_kernel(
    x_ptr,  # [M, K], row stride given
    w_ptr,  # [N, K] contiguous
    b_ptr,  # [N] or unused
    out_ptr,  # [M, N] contiguous
    M,
    stride_xm,
    K: tl.constexpr,
    N: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    n_ok, m_ok = n < N, m < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < K
        x = tl.load(x_ptr + m[:, None] * stride_xm + k[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + n[:, None] * K + k[None, :], mask=n_ok[:, None] & k_ok[None, :], other=0.0)
        acc = tl.dot(x, tl.trans(w), acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + m[:, None] * N + n[None, :], acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def block_n(n: int) -> int:
    """Output columns a program takes: enough programs to keep the memory busy (gpt-oss-20b's
    k and v, 512 columns, get 32; q, 4096, gets 128)."""
    return 16 if n <= 2048 else 32


@torch.library.custom_op("rl2048::few_rows_linear", mutates_args=())
def few_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`x [M, K] @ weight [N, K]^T + bias [N]` in x's dtype (float32 accumulation)."""
    rows, k = x.shape
    n = weight.shape[0]
    out = torch.empty((rows, n), dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(n, block_n(n)), triton.cdiv(rows, BLOCK_M))
    _few_rows_linear_kernel[grid](
        x, weight.contiguous(), weight if bias is None else bias, out, rows, x.stride(0), k, n,
        HAS_BIAS=bias is not None, BLOCK_M=BLOCK_M, BLOCK_N=block_n(n), BLOCK_K=BLOCK_K, num_warps=4, num_stages=4,
    )  # fmt: skip
    return out


@few_rows_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[0]))
