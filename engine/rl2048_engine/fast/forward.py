"""The gpt-oss decoder as plain functions over a static KV cache, for fast generation.

The same math as transformers' `GptOssForCausalLM` (eager attention with learned sinks,
sliding-window layers, top-k router, clamped SwiGLU experts), written so that one decode step
has fixed shapes and never waits on the host: it can be captured in a CUDA graph.

- A layer is two pure functions of tensors around the routed experts: `layer_head` (norm,
  attention, residual, norm, router, sorting the (token, expert) pairs) and, after the experts'
  first grouped linear, `activate`; `add_experts` sums the second one's rows into the residual.
  `GptOssRunner(compiled=True)` runs them through `torch.compile` (one compilation serves every
  layer), which fuses their few hundred small kernels a step into a few dozen; the grouped
  linears stay outside, as Triton kernels or `grouped_mm`. On CUDA a decode step's attention
  and routing are one Triton kernel each (`decode_attention.py`, `decode_routing.py`,
  `Dims.decode_kernels`), called from inside the compiled function.
- Weights are the transformers modules' own, gathered per layer as tensors (`LayerTensors`).
  The attention projections may carry PEFT LoRA adapters (their B and scaling are taken as they
  are; LoRA on the experts is refused). q, k and v are one GEMM over their stacked weights: the
  runner moves the three parameters into rows of one tensor (`stacked_projection`, no copy kept),
  and o's into a tensor of its own. Below the base rows that tensor holds each adapter's A in the
  weight's dtype, which `refresh()` writes again, so the same GEMM gives every `x @ A.T` and only
  the rank-r `@ B.T` is left to add (`project`). With `fold_lora`, `refresh()` writes each layer's
  q, k and v weights (LoRA added) into one matrix and o's into another, so that a projection is
  one GEMM with no LoRA terms. It costs a copy of the attention weights (1.2 GiB for gpt-oss-20b
  in bf16).
- KV cache: one `[B, kv_heads, T, head_dim]` key and value tensor per layer. Prompts are
  left-padded, so every row writes the same slot at each step; a row's keys before its padding
  ends are masked out.
- Experts: the (token, expert) pairs are sorted by expert and run through two grouped GEMMs
  (`torch.nn.functional.grouped_mm`), which read only the experts some token was routed to.
  An experts module may bring its own `grouped_linears()` (MXFP4-resident experts do). On CUDA,
  decode-shaped batches (a few rows per expert) without autograd use the Triton kernel of
  `moe_kernels.py` instead, which reads each routed expert once; `set_kernels(False)` turns the
  Triton kernels off everywhere (the benchmark does so if they fail their check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from ..logprobs import round_up

NEG_INF = float("-inf")
DECODE_PAIRS_PER_EXPERT = 4
"""Up to this many (token, expert) pairs per expert on average, the experts use the decode kernels."""


def decode_shaped(pairs: int, num_experts: int) -> bool:
    """Whether `pairs` (token, expert) pairs are few enough for the experts' decode kernels."""
    return pairs <= DECODE_PAIRS_PER_EXPERT * num_experts

_KERNELS = {"enabled": True}


def set_kernels(enabled: bool) -> None:
    """Use (or stop using) the Triton kernels of `moe_kernels.py` on CUDA."""
    _KERNELS["enabled"] = enabled


def kernels_enabled() -> bool:
    return _KERNELS["enabled"]


# --- a layer as tensors -------------------------------------------------------------------------


LoRA = tuple[tuple[torch.Tensor, torch.Tensor, float], ...]
"""A projection's LoRA adapters as (A, B, scaling): `scaling * (x @ A.T) @ B.T` each."""


class Proj(NamedTuple):
    """`x @ weight.T + bias` as outputs of `sizes` (one output when empty), each plus the LoRA
    adapters of `loras` (one LoRA per output). The weight's (and bias's) last `a_rows` rows hold
    those adapters' A matrices, in order, in the weight's dtype (zero-padded to whole 16 bytes of
    output), so the one GEMM also gives each adapter's `x @ A.T`."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    sizes: tuple[int, ...] = ()
    loras: tuple[LoRA, ...] = ()
    a_rows: int = 0


class LayerTensors(NamedTuple):
    input_norm: torch.Tensor
    qkv: Proj  # q, k and v stacked, `[q + k + v out (+ A rows), H]`: one GEMM, three outputs
    o: Proj
    sinks: torch.Tensor  # [heads] learned attention sinks
    post_norm: torch.Tensor
    router: Proj


class Dims(NamedTuple):
    """The constants the layer functions need (the same in every layer)."""

    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    scaling: float
    top_k: int
    num_experts: int
    decode_kernels: bool = False  # decode attention and routing as the Triton kernels of
    # `decode_attention.py` and `decode_routing.py`
    experts_input: torch.dtype | None = None  # the experts' input rows cast to this dtype (f16 for
    # the MXFP4 decode kernels' fp8 path, `MxExperts.decode_dtype`) by the kernels that make them


class Routing(NamedTuple):
    """(token, expert) pairs sorted by expert."""

    token: torch.Tensor  # [P] the token of each pair
    expert: torch.Tensor  # [P]
    weight: torch.Tensor  # [P] the router's weight of the pair
    offsets: torch.Tensor  # [E] int32 cumulative pair counts, as grouped_mm takes them
    inverse: torch.Tensor  # [N, k] where token n's j-th chosen expert's pair went


def project(x: torch.Tensor, p: Proj) -> list[torch.Tensor]:
    """The outputs of `p` for `x`, each with its adapters' `scaling * (x @ A.T) @ B.T` added in
    B's dtype before casting back to x's, as PEFT adds them. `x @ A.T` comes out of the GEMM
    (`p.a_rows`). `@ B.T`, of rank r, is a multiply-sum that the compiler fuses into whatever
    follows; as a matmul it would be a GEMM of a handful of columns and its split-K reduction."""
    y = F.linear(x, p.weight, p.bias)
    *outs, xa = y.split([*(p.sizes or (y.shape[-1] - p.a_rows,)), p.a_rows], dim=-1)
    start, result = 0, []
    for out, lora in zip(outs, p.loras or ((),) * len(outs)):
        for a, b, scaling in lora:
            u = xa[..., start : start + a.shape[0]].to(b.dtype)
            out = out + (u.unsqueeze(-2) * b).sum(-1) * scaling
            start += a.shape[0]
        result.append(out.to(x.dtype))
    return result


def proj(x: torch.Tensor, p: Proj) -> torch.Tensor:
    """A projection of one output."""
    return project(x, p)[0]


def router_logits(x: torch.Tensor, p: Proj) -> torch.Tensor:
    """`x @ W.T + b` for the router's few outputs, as a float32 multiply-sum rounded once (as a GEMM
    does): compiled, one small reduction instead of a split-K GEMM and its reduction."""
    return ((x.float().unsqueeze(-2) * p.weight.float()).sum(-1) + p.bias.float()).to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return (weight * h).to(x.dtype)


def attention(
    x: torch.Tensor,
    t: LayerTensors,
    d: Dims,
    cos: torch.Tensor,
    sin: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    write_slots: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Attention of `x [B, S, H]` (normed) written at cache slots `write_slots [S]`, over the
    cache `keys`, `values` with the additive `mask [B, S, T]`, learned sinks included."""
    batch, seq, _ = x.shape
    groups = d.heads // d.kv_heads
    q, k, v = project(x, t.qkv)
    q = q.reshape(batch, seq, d.heads, d.head_dim).transpose(1, 2)
    k = k.reshape(batch, seq, d.kv_heads, d.head_dim).transpose(1, 2)
    v = v.reshape(batch, seq, d.kv_heads, d.head_dim).transpose(1, 2)
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    keys.index_copy_(2, write_slots, k)
    values.index_copy_(2, write_slots, v)

    # Query head h reads kv head h // groups: view queries as [B, kv_heads, groups * S, D].
    q = q.reshape(batch, d.kv_heads, groups * seq, d.head_dim)
    if seq == 1 and d.decode_kernels:  # one kernel for the rest (decode_attention.py)
        out = torch.ops.rl2048.decode_attention(q, keys, values, mask.view(batch, -1), t.sinks, d.scaling)
        return proj(out.view(batch, seq, d.heads * d.head_dim), t.o)
    scores = torch.matmul(q, keys.transpose(-1, -2)).float() * d.scaling
    scores = scores.view(batch, d.kv_heads, groups, seq, -1) + mask.view(batch, 1, 1, seq, -1)
    sinks = t.sinks.float().view(1, d.kv_heads, groups, 1, 1).expand(batch, -1, -1, seq, 1)
    probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
    probs = probs.to(values.dtype).view(batch, d.kv_heads, groups * seq, -1)
    out = torch.matmul(probs, values).view(batch, d.kv_heads, groups, seq, d.head_dim)
    out = out.permute(0, 3, 1, 2, 4).reshape(batch, seq, d.heads * d.head_dim)
    return proj(out, t.o)


def route(chosen: torch.Tensor, weights: torch.Tensor, num_experts: int) -> Routing:
    """Each token's `chosen [N, k]` experts and their `weights`, as pairs sorted by expert (stable)."""
    top_k = chosen.shape[1]
    flat = chosen.reshape(-1)
    pair = torch.arange(flat.shape[0], device=flat.device)
    if flat.shape[0] <= SORT_BY_COMPARING:
        # Each pair's place in the sorted order: pairs of a lower expert, or of the same expert
        # and earlier. Elementwise work that torch.compile fuses, where a sort is its own kernel.
        lower = flat.unsqueeze(0) < flat.unsqueeze(1)
        same_earlier = (flat.unsqueeze(0) == flat.unsqueeze(1)) & (pair.unsqueeze(0) < pair.unsqueeze(1))
        place = (lower | same_earlier).sum(1)
        order = torch.empty_like(place).scatter_(0, place, pair)
    else:
        order = flat.argsort(stable=True)
        place = torch.empty_like(order).scatter_(0, order, pair)
    # Pairs per expert without bincount (it would wait on the host): compare with 0..E-1.
    counts = (flat.unsqueeze(1) == torch.arange(num_experts, device=flat.device)).sum(0)
    offsets = counts.cumsum(0).to(torch.int32)
    return Routing(order // top_k, flat[order], weights.reshape(-1)[order], offsets, place.view_as(chosen))


SORT_BY_COMPARING = 256
"""Up to this many (token, expert) pairs (decode), `route` sorts them by comparing all pairs."""


def top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`torch.topk` over the last dimension for a small k, as k maxima (fused when compiled;
    topk is its own kernel). Ties, which random floats make vanishingly rare, may pick another index."""
    values, indices = [], []
    column = torch.arange(logits.shape[-1], device=logits.device)
    for _ in range(k):
        value, index = logits.max(dim=-1, keepdim=True)
        values.append(value)
        indices.append(index)
        logits = logits.masked_fill(column == index, NEG_INF)
    return torch.cat(values, dim=-1), torch.cat(indices, dim=-1)


def layer_head(
    hidden: torch.Tensor,
    t: LayerTensors,
    d: Dims,
    cos: torch.Tensor,
    sin: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    write_slots: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, Routing]:
    """A layer up to its experts: the hidden state after attention `[B, S, H]`, the experts'
    input rows in pair order `[P, H]`, and the routing."""
    hidden = hidden + attention(rms_norm(hidden, t.input_norm, d.eps), t, d, cos, sin, keys, values, write_slots, mask)
    x = rms_norm(hidden, t.post_norm, d.eps).reshape(-1, hidden.shape[-1])
    logits = router_logits(x, t.router)
    if d.decode_kernels and x.shape[0] * d.top_k <= SORT_BY_COMPARING:  # one kernel (decode_routing.py)
        routing = Routing(*torch.ops.rl2048.route_top_k(logits, d.top_k))
    else:
        top, chosen = top_k(logits, d.top_k)
        routing = route(chosen, torch.softmax(top, dim=-1, dtype=top.dtype), d.num_experts)
    return hidden, cast_rows(x[routing.token], d.experts_input), routing


def cast_rows(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The experts' input rows in `dtype` (None: as they are). To f16 they are clamped to its
    range first (65504, in float32: bf16 would round it to 65536, inf in f16), so that large bf16
    values saturate instead of becoming inf."""
    if dtype is None or dtype == x.dtype:
        return x
    if dtype == torch.float16:
        return x.float().clamp(-65504, 65504).to(dtype)
    return x.to(dtype)


def activate(
    h: torch.Tensor, bias: torch.Tensor, expert: torch.Tensor, alpha: float, limit: float, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The first grouped linear's rows, with their expert's bias, through gpt-oss's clamped SwiGLU
    (interleaved gate and up columns); `cast_rows` to `dtype` for the second."""
    h = h + bias[expert]
    gate, up = h[..., ::2], h[..., 1::2]
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return cast_rows((up + 1) * (gate * torch.sigmoid(gate * alpha)), dtype)


def experts_sum(out: torch.Tensor, bias: torch.Tensor, routing: Routing) -> torch.Tensor:
    """Each token's sum over its experts of `weight * (out + bias)`, `out [P, H]` in pair order:
    float32 `[N, H]`, summed in a fixed order (as transformers does: no atomics, deterministic)."""
    out = (out + bias[routing.expert]) * routing.weight.unsqueeze(1)
    return out[routing.inverse].float().sum(1)


def activate_backward(
    grad: torch.Tensor, h: torch.Tensor, bias: torch.Tensor, expert: torch.Tensor, alpha: float, limit: float
) -> torch.Tensor:
    """The gradient of `activate` with respect to `h` (and so to the bias it adds), in float32 inside."""
    h = (h + bias[expert]).float()
    gate, up = h[..., ::2], h[..., 1::2]
    gate_c, up_c = gate.clamp(max=limit), up.clamp(min=-limit, max=limit)
    s = torch.sigmoid(gate_c * alpha)
    g = grad.float()
    d_gate = g * (up_c + 1) * (s + alpha * gate_c * s * (1 - s)) * (gate <= limit)
    d_up = g * gate_c * s * ((up >= -limit) & (up <= limit))
    return torch.stack([d_gate, d_up], dim=-1).flatten(-2).to(grad.dtype)


def experts_sum_backward(
    grad: torch.Tensor, out: torch.Tensor, bias: torch.Tensor, routing: Routing
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of `experts_sum` with respect to `out` and to the routing weights."""
    g = grad.float()[routing.token]
    d_out = g * routing.weight.float().unsqueeze(1)
    d_weight = (g * (out + bias[routing.expert]).float()).sum(-1)
    return d_out.to(out.dtype), d_weight.to(routing.weight.dtype)


class Activate(torch.autograd.Function):
    """`activate` with its backward written out: two fused kernels when the functions are compiled
    (letting torch.compile derive the backward of the pair takes about a minute to compile)."""

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        bias: torch.Tensor,
        expert: torch.Tensor,
        alpha: float,
        limit: float,
        fns: LayerFunctions,
    ) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h, bias, expert)
        ctx.constants = alpha, limit, fns
        return fns.activate(h, bias, expert, alpha, limit)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        h, bias, expert = ctx.saved_tensors
        alpha, limit, fns = ctx.constants
        d_h = fns.activate_backward(grad, h, bias, expert, alpha, limit)
        d_bias = _bias_grad(bias, expert, d_h) if ctx.needs_input_grad[1] else None
        return d_h, d_bias, None, None, None, None


class ExpertsSum(torch.autograd.Function):
    """`experts_sum`, differentiable in `out` and in the routing weights (which carry the gradient
    to the router's input), with its backward written out as for `Activate`."""

    @staticmethod
    def forward(
        ctx: Any, out: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, routing: Routing, fns: LayerFunctions
    ) -> torch.Tensor:  # type: ignore[override]
        routing = routing._replace(weight=weight)
        ctx.save_for_backward(out, bias, *routing)
        ctx.fns = fns
        return fns.experts_sum(out, bias, routing)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        out, bias, *routing = ctx.saved_tensors
        routing = Routing(*routing)
        d_out, d_weight = ctx.fns.experts_sum_backward(grad, out, bias, routing)
        d_bias = _bias_grad(bias, routing.expert, d_out) if ctx.needs_input_grad[2] else None
        return d_out, d_weight, d_bias, None, None


def _bias_grad(bias: torch.Tensor, expert: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of the experts' `bias [E, N]` that each row adds (`bias[expert]`), given the
    rows' gradient `grad [P, N]`: a full fine-tune trains it (LoRA leaves it frozen)."""
    return torch.zeros(bias.shape, dtype=torch.float32, device=bias.device).index_add_(0, expert, grad.float()).to(bias.dtype)


def add_experts(hidden: torch.Tensor, out: torch.Tensor, bias: torch.Tensor, routing: Routing) -> torch.Tensor:
    """The residual stream `hidden [B, S, H]` plus the experts' sum."""
    return hidden + experts_sum(out, bias, routing).to(hidden.dtype).view(hidden.shape)


class LayerFunctions(NamedTuple):
    layer_head: Callable[..., tuple[torch.Tensor, torch.Tensor, Routing]]
    activate: Callable[..., torch.Tensor]
    add_experts: Callable[..., torch.Tensor]
    experts_sum: Callable[..., torch.Tensor]
    norm: Callable[..., torch.Tensor]
    activate_backward: Callable[..., torch.Tensor]
    experts_sum_backward: Callable[..., tuple[torch.Tensor, torch.Tensor]]


EAGER = LayerFunctions(
    layer_head, activate, add_experts, experts_sum, rms_norm, activate_backward, experts_sum_backward
)


def compiled_functions(dynamic: bool = False, combo_kernels: bool = False) -> LayerFunctions:
    """The layer functions through `torch.compile`. With static shapes (decode) each compiles
    once per batch and cache size, then serves every layer (its weights are arguments); with
    `dynamic`, once for any number of rows (training). `combo_kernels` (GPU): inductor also
    merges independent kernels into one launch (with the decode routing kernel, a gpt-oss-20b bf16
    decode step on an H200 went 585 -> 393 kernels, bench/RESULTS.md), and with `pdl.ENABLED` takes
    programmatic dependent launch."""
    options = None
    if combo_kernels:
        from . import pdl  # imports Triton, which the GPU has

        options = {"combo_kernels": True, **pdl.inductor_options()}
    return LayerFunctions(*(torch.compile(f, fullgraph=True, dynamic=dynamic, options=options) for f in EAGER))


_COMPILED: dict[str, LayerFunctions] = {}


def _training_functions() -> LayerFunctions:
    if "training" not in _COMPILED:
        _COMPILED["training"] = compiled_functions(dynamic=True)
    return _COMPILED["training"]


# --- the experts ----------------------------------------------------------------------------------

GroupedLinear = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def expert_linears(experts: nn.Module, pairs: int) -> tuple[GroupedLinear, torch.Tensor, GroupedLinear, torch.Tensor]:
    """The experts' two grouped linears `(x [P, K] in pair order, offsets) -> [P, N]` and biases."""
    if hasattr(experts, "grouped_linears"):
        return experts.grouped_linears()  # type: ignore[no-any-return]
    gate_up_w, down_w = experts.gate_up_proj, experts.down_proj
    if _decode_kernel_applies(gate_up_w, pairs, gate_up_w.shape[0]):
        from .moe_kernels import grouped_linear

        def gate_up(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return grouped_linear(h, offs, weight=gate_up_w)

        def down(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return grouped_linear(h, offs, weight=down_w)

    else:

        def gate_up(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return F.grouped_mm(h, gate_up_w, offs=offs)

        def down(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return F.grouped_mm(h, down_w, offs=offs)

    return gate_up, experts.gate_up_proj_bias, down, experts.down_proj_bias


@torch.compiler.disable
def grouped_experts(
    experts: nn.Module, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor, num_experts: int
) -> torch.Tensor:
    """Sum over each token's chosen experts of `weight * expert(x)`: `x [N, H]`, `chosen [N, k]`.
    The experts' forward in training and scoring (see `experts_forward`); on CUDA the activation
    and the sum, and their backward, run compiled (`torch.compile`, dynamic shapes). Never traced
    into a compiled caller (`training.compile_layers`): its kernels and autograd functions run as
    they are between the compiled parts of a layer."""
    fns = _training_functions() if x.is_cuda and kernels_enabled() else EAGER
    routing = route(chosen, weights, num_experts)
    gate_up, gate_up_bias, down, down_bias = expert_linears(experts, chosen.numel())
    h = gate_up(x[routing.token].to(gate_up_bias.dtype), routing.offsets)
    h = Activate.apply(h, gate_up_bias, routing.expert, experts.alpha, experts.limit, fns)
    return ExpertsSum.apply(down(h, routing.offsets), routing.weight, down_bias, routing, fns).to(x.dtype)


def experts_forward(
    experts: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """`grouped_experts` as a transformers experts implementation, for gpt-oss's dense experts:
    `use_fast_experts(model)` registers it and selects it."""
    return grouped_experts(experts, hidden_states, top_k_index, top_k_weights, experts.num_experts)


def use_fast_experts(causal_lm: PreTrainedModel) -> None:
    """Route the model's dense experts through `experts_forward` (transformers' own is grouped_mm
    with the activation, bias and sum as separate kernels, forward and backward)."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    ALL_EXPERTS_FUNCTIONS.register(FAST_EXPERTS, experts_forward)
    causal_lm.set_experts_implementation(FAST_EXPERTS)


FAST_EXPERTS = "rl2048"


def _decode_kernel_applies(weight: torch.Tensor, pairs: int, num_experts: int) -> bool:
    return (
        weight.is_cuda
        and kernels_enabled()
        and not torch.is_grad_enabled()
        and decode_shaped(pairs, num_experts)
    )


def _decode_kernels_fit(head_dim: int) -> bool:
    """The decode attention kernel takes a power-of-two head dimension of at least 16 (`tl.dot`)."""
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on `x [B, heads, S, D]` with `cos`, `sin` `[B, S, D/2]` (halves, not pairs)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    first, second = torch.chunk(x, 2, dim=-1)
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)


# --- the model ------------------------------------------------------------------------------------


@dataclass
class KVCache:
    keys: list[torch.Tensor]  # per layer [B, kv_heads, T, head_dim]
    values: list[torch.Tensor]

    @staticmethod
    def empty(runner: GptOssRunner, batch: int, slots: int) -> KVCache:
        shape = (batch, runner.dims.kv_heads, slots, runner.dims.head_dim)
        make = lambda: torch.zeros(shape, dtype=runner.dtype, device=runner.device)  # noqa: E731
        return KVCache([make() for _ in runner.layers], [make() for _ in runner.layers])

    @property
    def slots(self) -> int:
        return self.keys[0].shape[2]


@dataclass
class FoldedProjections:
    """One layer's attention projections with LoRA added: q, k and v as one matrix."""

    qkv_weight: torch.Tensor  # [q + k + v out, H]
    qkv_bias: torch.Tensor | None
    o_weight: torch.Tensor
    o_bias: torch.Tensor | None

    @staticmethod
    def of(attn: nn.Module) -> FoldedProjections:
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = map(
            folded_weight, (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)
        )
        qkv_bias = None if bq is None or bk is None or bv is None else torch.cat([bq, bk, bv])
        return FoldedProjections(torch.cat([wq, wk, wv]), qkv_bias, wo, bo)

    def copy_(self, other: FoldedProjections) -> None:
        for field in fields(self):
            mine = getattr(self, field.name)
            if mine is not None:
                mine.copy_(getattr(other, field.name))


def stacked_projection(linears: tuple[nn.Module, ...]) -> Proj:
    """The base weights and biases of `linears` as one projection of one output each, without a
    copy, their active adapters' A matrices written below (`Proj.a_rows`). The first call moves
    the parameters into the rows of one new tensor (the same values and parameter objects; their
    old memory is freed), later calls find them there. Called without autograd (`refresh`)."""
    bases = [getattr(linear, "base_layer", linear) for linear in linears]
    loras = tuple(lora_of(linear) for linear in linears)
    sizes = tuple(base.weight.shape[0] for base in bases)
    a_matrices = [a for lora in loras for a, _, _ in lora]
    ranks = sum(a.shape[0] for a in a_matrices)
    a_rows = round_up(ranks, 8)  # outputs' rows in whole 16 bytes (bf16)
    weight = _stack_in_place([base.weight for base in bases], a_rows)
    if a_matrices:
        weight[sum(sizes) : sum(sizes) + ranks] = torch.cat(a_matrices)
    biases = [base.bias for base in bases]
    bias = None if None in biases else _stack_in_place(biases, a_rows)  # zeros for the A rows
    return Proj(weight, bias, sizes, loras, a_rows)


def _stack_in_place(params: list[torch.Tensor], extra_rows: int = 0) -> torch.Tensor:
    """`params` as consecutive rows of one tensor, with `extra_rows` rows after them (zeros when
    the tensor is made here)."""
    rows = sum(p.shape[0] for p in params)
    if not _stacked(params, rows + extra_rows):
        first = params[0]
        stacked = torch.zeros((rows + extra_rows, *first.shape[1:]), dtype=first.dtype, device=first.device)
        start = 0
        for p in params:
            stacked[start : start + p.shape[0]] = p.detach()
            p.data = stacked[start : start + p.shape[0]]
            start += p.shape[0]
    first = params[0].detach()
    return first.as_strided((rows + extra_rows, *first.shape[1:]), first.stride())


def _stacked(params: list[torch.Tensor], rows: int) -> bool:
    """Whether `params` are consecutive, contiguous rows of one storage that holds `rows` rows
    from the first one's."""
    storage, start = params[0].untyped_storage(), params[0].storage_offset()
    offset = start
    for p in params:
        if not p.is_contiguous() or p.untyped_storage().data_ptr() != storage.data_ptr() or p.storage_offset() != offset:
            return False
        offset += p.numel()
    row = params[0][0].numel()
    return storage.nbytes() >= (start + rows * row) * params[0].element_size()


def folded_weight(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A projection's weight with its active LoRA adapters added (PEFT's own `get_delta_weight`,
    which applies the scaling), and its bias; a plain `nn.Linear` as it is."""
    base = getattr(linear, "base_layer", linear)
    weight = base.weight
    for a, b, scaling in lora_of(linear):
        weight = weight + (b @ a * scaling).to(weight.dtype)
    return weight, base.bias


def active_adapters(linear: nn.Module) -> list[str]:
    """The names of a PEFT layer's active, unmerged LoRA adapters; none for a plain one."""
    if not hasattr(linear, "lora_A") or linear.disable_adapters or linear.merged:
        return []
    return [n for n in linear.active_adapters if n in linear.lora_A]


def lora_of(linear: nn.Module) -> tuple[tuple[torch.Tensor, torch.Tensor, float], ...]:
    """The active, unmerged LoRA adapters of a PEFT layer as (A, B, scaling); none for a plain one."""
    names = active_adapters(linear)
    return tuple((linear.lora_A[n].weight, linear.lora_B[n].weight, float(linear.scaling[n])) for n in names)


class GptOssRunner:
    """Prefill and decode over a static cache, calling into a loaded `GptOssForCausalLM`.

    `refresh()` gathers the layers' tensors (and folds LoRA with `fold_lora`); call it whenever
    the adapters may have changed. `forward` runs the eager functions, or with `compiled` the
    `torch.compile`d ones (meant for the fixed shapes of decode)."""

    def __init__(self, causal_lm: PreTrainedModel, fold_lora: bool = False) -> None:
        config = causal_lm.config
        if config.model_type != "gpt_oss":
            raise ValueError(f"fast paths support gpt-oss models only, not {config.model_type!r}")
        decoder = causal_lm.get_decoder()
        self.embed = decoder.embed_tokens
        self.layers = list(decoder.layers)
        self.norm = decoder.norm
        self.head = causal_lm.get_output_embeddings()
        self.rotary = decoder.rotary_emb
        self.layer_types: list[str] = list(config.layer_types)
        self.window: int = config.sliding_window
        self.dtype = self.head.weight.dtype
        self.device = self.head.weight.device
        self.dims = Dims(
            heads=config.num_attention_heads,
            kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            eps=self.norm.variance_epsilon,
            scaling=self.layers[0].self_attn.scaling,
            top_k=config.num_experts_per_tok,
            num_experts=config.num_local_experts,
            decode_kernels=self.device.type == "cuda" and kernels_enabled() and _decode_kernels_fit(config.head_dim),
        )
        if self.dims.decode_kernels:  # register torch.ops.rl2048.decode_attention and route_top_k
            from . import decode_attention, decode_routing  # noqa: F401
        experts_dtype = getattr(self.layers[0].mlp.experts, "decode_dtype", None)
        self.decode_experts_input = experts_dtype if self.device.type == "cuda" and kernels_enabled() else None
        for layer in self.layers:
            experts = layer.mlp.experts
            if not hasattr(experts, "gate_up_proj") and not hasattr(experts, "grouped_linears"):
                raise ValueError("fast paths need plain experts (no LoRA on the expert weights)")
            attn = layer.self_attn
            for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj):
                if any(getattr(p, "use_dora", {}).values()) or any(getattr(p, "lora_bias", {}).values()):
                    raise ValueError("fast paths support plain LoRA (no DoRA, no lora_bias)")
        self.fold_lora = fold_lora
        self.folded: list[FoldedProjections] | None = None
        self.tensors: list[LayerTensors] = []
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Gather each layer's tensors from the current modules. With `fold_lora`, rewrite the
        folded projections a layer at a time; their buffers keep their memory from call to call,
        so a captured CUDA graph reads the new values."""
        if self.fold_lora:
            if self.folded is None:
                self.folded = [FoldedProjections.of(layer.self_attn) for layer in self.layers]
            else:
                for mine, layer in zip(self.folded, self.layers):
                    mine.copy_(FoldedProjections.of(layer.self_attn))
        self.tensors = []
        for i, layer in enumerate(self.layers):
            attn, router = layer.self_attn, layer.mlp.router
            parts = (attn.q_proj, attn.k_proj, attn.v_proj)
            if self.folded is not None:
                f = self.folded[i]
                sizes = tuple(getattr(p, "base_layer", p).weight.shape[0] for p in parts)
                qkv, o = Proj(f.qkv_weight, f.qkv_bias, sizes), Proj(f.o_weight, f.o_bias)
            else:
                qkv, o = stacked_projection(parts), stacked_projection((attn.o_proj,))
            self.tensors.append(
                LayerTensors(
                    layer.input_layernorm.weight, qkv, o, attn.sinks, layer.post_attention_layernorm.weight,
                    Proj(router.weight, router.bias),
                )
            )  # fmt: skip

    # --- tables and masks -------------------------------------------------------------------

    def rope_table(self, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin `[slots, head_dim / 2]` for positions 0..slots-1, as the model computes them."""
        positions = torch.arange(slots, device=self.device).unsqueeze(0)
        probe = torch.empty(1, dtype=self.dtype, device=self.device)
        cos, sin = self.rotary(probe, positions)
        return cos[0], sin[0]

    def masks(self, query_slots: torch.Tensor, pad: torch.Tensor, slots: int) -> dict[str, torch.Tensor]:
        """Additive masks `[B, S, T]` per layer type: causal, past the row's padding, and windowed."""
        j = torch.arange(slots, device=self.device)
        q = query_slots.view(1, -1, 1)
        causal = (j.view(1, 1, -1) <= q) & (j.view(1, 1, -1) >= pad.view(-1, 1, 1))
        sliding = causal & (q - j.view(1, 1, -1) < self.window)
        zero = torch.zeros((), dtype=torch.float32, device=self.device)
        return {
            "full_attention": torch.where(causal, zero, NEG_INF),
            "sliding_attention": torch.where(sliding, zero, NEG_INF),
        }

    # --- the model --------------------------------------------------------------------------

    def forward(
        self,
        hidden: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        write_slots: torch.Tensor,
        masks: dict[str, torch.Tensor],
        cache: KVCache,
        fns: LayerFunctions = EAGER,
    ) -> torch.Tensor:
        """Run `hidden [B, S, H]` (embedded tokens at cache slots `write_slots [S]`) through every
        layer, writing their keys and values into `cache`; returns the final-norm hidden states."""
        d = self.dims
        if decode_shaped(hidden.shape[0] * hidden.shape[1] * d.top_k, d.num_experts):
            d = d._replace(experts_input=self.decode_experts_input)  # the decode kernels' input
        for i, (layer, t) in enumerate(zip(self.layers, self.tensors)):
            mask = masks[self.layer_types[i]]
            hidden, x, routing = fns.layer_head(hidden, t, d, cos, sin, cache.keys[i], cache.values[i], write_slots, mask)
            experts = layer.mlp.experts
            gate_up, gate_up_bias, down, down_bias = expert_linears(experts, x.shape[0])
            h = gate_up(x, routing.offsets)
            h = fns.activate(h, gate_up_bias, routing.expert, experts.alpha, experts.limit, d.experts_input)
            hidden = fns.add_experts(hidden, down(h, routing.offsets), down_bias, routing)
        return fns.norm(hidden, self.norm.weight, self.dims.eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits `[B, V]` of the last position only."""
        return self.head(hidden[:, -1]).float()
