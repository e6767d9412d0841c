"""Decode routing in one Triton kernel: router logits to (token, expert) pairs sorted by expert.

`forward.top_k` and `forward.route` are a handful of small fused kernels a layer once compiled
(top-k maxima, the softmax of the chosen logits, each pair's place in the expert order, the
scatter into that order, the pair counts and their cumulative sum). In a decode step (a few
tokens, `N * k <= forward.SORT_BY_COMPARING` pairs) all of it fits one program: this kernel
computes the same `Routing` (same order; among equal logits the lowest expert index is chosen)
in one launch.

`route_top_k` is a `torch.library` custom op, so `torch.compile` calls it inside the compiled
layer. Runs on CUDA, or on the CPU under `TRITON_INTERPRET=1` (the tests check it that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl


@triton.jit
def _route_kernel(
    logits_ptr,  # [N, E]
    chosen_ptr,  # [N * K] int32 scratch: each pair's expert
    top_ptr,  # [N * K] float32 scratch: each pair's logit
    token_ptr,  # [P] int64 out, pairs in expert order
    expert_ptr,  # [P] int64 out
    weight_ptr,  # [P] out (the logits' dtype)
    offsets_ptr,  # [E] int32 out
    inverse_ptr,  # [N * K] int64 out: where pair n * K + j went
    N: tl.constexpr,
    E: tl.constexpr,
    K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_P: tl.constexpr,
    PDL: tl.constexpr,
):
    pdl.start(PDL)
    n = tl.arange(0, BLOCK_N)
    e = tl.arange(0, BLOCK_E)
    ok = (n < N)[:, None] & (e < E)[None, :]
    x = tl.load(logits_ptr + n[:, None] * E + e[None, :], mask=ok, other=float("-inf")).to(tl.float32)
    for j in tl.static_range(K):  # the k largest of each row, largest first
        best = tl.max(x, axis=1)
        index = tl.min(tl.where(x == best[:, None], e[None, :], BLOCK_E), axis=1)
        tl.store(chosen_ptr + n * K + j, index, mask=n < N)
        tl.store(top_ptr + n * K + j, best, mask=n < N)
        x = tl.where(e[None, :] == index[:, None], float("-inf"), x)
    tl.debug_barrier()  # the scratch written above is read below by other threads

    p = tl.arange(0, BLOCK_P)
    p_ok = p < N * K
    expert = tl.load(chosen_ptr + p, mask=p_ok, other=BLOCK_E)
    top = tl.load(top_ptr + p, mask=p_ok, other=float("-inf"))
    first = tl.load(top_ptr + (p // K) * K, mask=p_ok, other=0.0)  # the token's largest
    total = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for j in tl.static_range(K):
        total += tl.exp(tl.load(top_ptr + (p // K) * K + j, mask=p_ok, other=0.0) - first)
    weight = tl.exp(top - first) / total  # softmax over the token's k chosen logits

    q = p[None, :]  # the other pairs
    q_expert = tl.load(chosen_ptr + q, mask=q < N * K, other=BLOCK_E)
    before = (q_expert < expert[:, None]) | ((q_expert == expert[:, None]) & (q < p[:, None]))
    place = tl.sum((before & (q < N * K)).to(tl.int32), axis=1)  # stable sort by expert
    tl.store(token_ptr + place, (p // K).to(tl.int64), mask=p_ok)
    tl.store(expert_ptr + place, expert.to(tl.int64), mask=p_ok)
    tl.store(weight_ptr + place, weight.to(weight_ptr.dtype.element_ty), mask=p_ok)
    tl.store(inverse_ptr + p, place.to(tl.int64), mask=p_ok)
    counts = tl.sum((expert[None, :] == e[:, None]).to(tl.int32), axis=1)
    tl.store(offsets_ptr + e, tl.cumsum(counts, axis=0), mask=e < E)


@torch.library.custom_op("rl2048::route_top_k", mutates_args=())
def route_top_k(
    logits: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Router `logits [N, E]` to the fields of `forward.Routing`: token, expert, weight `[N * k]`
    in expert order, offsets `[E]` (int32 cumulative counts) and inverse `[N, k]`."""
    tokens, experts = logits.shape
    pairs = tokens * k
    device = logits.device
    chosen = torch.empty(pairs, dtype=torch.int32, device=device)
    top = torch.empty(pairs, dtype=torch.float32, device=device)
    token = torch.empty(pairs, dtype=torch.int64, device=device)
    expert = torch.empty(pairs, dtype=torch.int64, device=device)
    weight = torch.empty(pairs, dtype=logits.dtype, device=device)
    offsets = torch.empty(experts, dtype=torch.int32, device=device)
    inverse = torch.empty((tokens, k), dtype=torch.int64, device=device)
    _route_kernel[(1,)](
        logits.contiguous(), chosen, top, token, expert, weight, offsets, inverse,
        N=tokens, E=experts, K=k, BLOCK_N=triton.next_power_of_2(tokens),
        BLOCK_E=triton.next_power_of_2(experts), BLOCK_P=triton.next_power_of_2(pairs),
        **pdl.launch_options(device, "routing"),
    )  # fmt: skip
    return token, expert, weight, offsets, inverse


@route_top_k.register_fake
def _(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens, experts = logits.shape
    return (
        logits.new_empty(tokens * k, dtype=torch.int64),
        logits.new_empty(tokens * k, dtype=torch.int64),
        logits.new_empty(tokens * k),
        logits.new_empty(experts, dtype=torch.int32),
        logits.new_empty((tokens, k), dtype=torch.int64),
    )
