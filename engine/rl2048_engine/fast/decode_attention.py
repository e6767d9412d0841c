"""Decode attention with learned sinks in one Triton kernel: one new query per row over the cache.

In a decode step each row's query heads attend over the whole static cache. Written as PyTorch
(`forward.attention`), that is a GEMM for the scores, a softmax over them with the sinks joined
(which torch.compile splits into four kernels), and a GEMM with the values: six kernels a layer.
Here one program per (row, kv head) takes that kv head's query heads (8 in gpt-oss-20b), streams
its keys and values in blocks with an online softmax and writes the output: one kernel a layer.

The sink enters as the softmax's starting point: the running max starts at the head's sink
logit and the running sum at 1 (its exp), so it joins the normalization and adds no value, as in
transformers' `cat([scores, sinks])`. Masked slots (`mask` -inf: padding, the future, outside a
sliding window) get weight 0. Scores are float32 (`q . k` accumulated in float32); the weights
are rounded to the values' dtype for the second product, as the PyTorch path rounds its probs.

`decode_attention` is a `torch.library` custom op, so `torch.compile` calls it as an opaque
kernel inside the compiled layer (and the CUDA graph captures it). Runs on CUDA, or on the CPU
under `TRITON_INTERPRET=1` (the tests check it that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl

BLOCK_T = 64
"""Cache slots a program takes at a time."""


@triton.jit
def _decode_attention_kernel(
    q_ptr,  # [B, KV, G, D], strides given
    k_ptr,  # [B, KV, T, D] contiguous
    v_ptr,
    mask_ptr,  # [B, T] float32 additive
    sinks_ptr,  # [KV * G], any float dtype (converted here: no cast kernel)
    out_ptr,  # [B, KV, G, D] contiguous
    stride_qb,
    stride_qh,
    stride_qg,
    scaling,
    T: tl.constexpr,
    KV: tl.constexpr,
    G: tl.constexpr,
    D: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_T: tl.constexpr,
    PDL: tl.constexpr,
):
    pdl.start(PDL)
    b = tl.program_id(0)
    h = tl.program_id(1)
    g = tl.arange(0, BLOCK_G)
    g_ok = g < G
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + g[:, None] * stride_qg + d[None, :], mask=g_ok[:, None], other=0.0)
    m = tl.load(sinks_ptr + h * G + g, mask=g_ok, other=0.0).to(tl.float32)  # running max: the sink
    total = tl.full((BLOCK_G,), 1.0, dtype=tl.float32)  # running sum: exp(sink - m)
    acc = tl.zeros((BLOCK_G, D), dtype=tl.float32)
    cache = (b * KV + h) * T * D
    for t0 in range(0, T, BLOCK_T):
        t = t0 + tl.arange(0, BLOCK_T)
        t_ok = t < T
        k = tl.load(k_ptr + cache + t[:, None] * D + d[None, :], mask=t_ok[:, None], other=0.0)
        add = tl.load(mask_ptr + b * T + t, mask=t_ok, other=float("-inf"))
        s = tl.dot(q, tl.trans(k)) * scaling + add[None, :]  # [BLOCK_G, BLOCK_T] float32
        m_new = tl.maximum(m, tl.max(s, axis=1))
        rescale = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        total = total * rescale + tl.sum(p, axis=1)
        v = tl.load(v_ptr + cache + t[:, None] * D + d[None, :], mask=t_ok[:, None], other=0.0)
        acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v)
        m = m_new
    out = out_ptr + ((b * KV + h) * G + g[:, None]) * D + d[None, :]
    tl.store(out, (acc / total[:, None]).to(out_ptr.dtype.element_ty), mask=g_ok[:, None])


@torch.library.custom_op("rl2048::decode_attention", mutates_args=())
def decode_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, sinks: torch.Tensor, scaling: float
) -> torch.Tensor:
    """`q [B, kv_heads, G, D]` (query head `h * G + g` of kv head h) over the cache `keys`,
    `values` `[B, kv_heads, T, D]` with the additive `mask [B, T]` and `sinks [kv_heads * G]`;
    returns `[B, kv_heads, G, D]` in q's dtype. D a power of two, at least 16."""
    batch, kv_heads, groups, dim = q.shape
    slots = keys.shape[2]
    out = torch.empty((batch, kv_heads, groups, dim), dtype=q.dtype, device=q.device)
    _decode_attention_kernel[(batch, kv_heads)](
        q, keys.contiguous(), values.contiguous(), mask.float().contiguous(), sinks.contiguous(), out,
        q.stride(0), q.stride(1), q.stride(2), scaling, slots,
        KV=kv_heads, G=groups, D=dim, BLOCK_G=max(16, triton.next_power_of_2(groups)), BLOCK_T=BLOCK_T,
        **pdl.launch_options(q.device, "attention"),
    )  # fmt: skip
    return out


@decode_attention.register_fake
def _(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, sinks: torch.Tensor, scaling: float) -> torch.Tensor:
    return torch.empty_like(q, memory_format=torch.contiguous_format)
