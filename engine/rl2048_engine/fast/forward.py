"""The gpt-oss decoder as plain functions over a static KV cache, for fast generation.

The same math as transformers' `GptOssForCausalLM` (eager attention with learned sinks,
sliding-window layers, top-k router, clamped SwiGLU experts), written so that one decode step
has fixed shapes and never waits on the host: it can be captured in a CUDA graph.

- Weights are the transformers modules' own; projections are called as modules, so PEFT's LoRA
  layers on the attention projections work unchanged (LoRA on the experts does not: refused).
  With `fold_lora`, `refresh_folded()` writes each layer's q, k and v weights (LoRA added) into
  one matrix and o's into another, so that a projection is one GEMM: without it, a LoRA
  projection is five kernels, two of them float32 GEMMs (PEFT keeps adapters in float32). It
  costs a copy of the attention weights (1.2 GiB for gpt-oss-20b in bf16).
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

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

NEG_INF = float("-inf")
DECODE_PAIRS_PER_EXPERT = 4
"""Up to this many (token, expert) pairs per expert on average, dense experts use the kernel."""

_KERNELS = {"enabled": True}


def set_kernels(enabled: bool) -> None:
    """Use (or stop using) the Triton kernels of `moe_kernels.py` on CUDA."""
    _KERNELS["enabled"] = enabled


def kernels_enabled() -> bool:
    return _KERNELS["enabled"]


@dataclass
class KVCache:
    keys: list[torch.Tensor]  # per layer [B, kv_heads, T, head_dim]
    values: list[torch.Tensor]

    @staticmethod
    def empty(runner: GptOssRunner, batch: int, slots: int) -> KVCache:
        shape = (batch, runner.kv_heads, slots, runner.head_dim)
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
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = map(folded_weight, (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))
        qkv_bias = None if bq is None or bk is None or bv is None else torch.cat([bq, bk, bv])
        return FoldedProjections(torch.cat([wq, wk, wv]), qkv_bias, wo, bo)

    def copy_(self, other: FoldedProjections) -> None:
        for field in fields(self):
            mine = getattr(self, field.name)
            if mine is not None:
                mine.copy_(getattr(other, field.name))


def folded_weight(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A projection's weight with its active LoRA adapters added (PEFT's own `get_delta_weight`,
    which applies the scaling), and its bias; a plain `nn.Linear` as it is."""
    base = getattr(linear, "base_layer", linear)
    weight = base.weight
    if hasattr(linear, "get_delta_weight") and not linear.disable_adapters and not linear.merged:
        for name in linear.active_adapters:
            if name in linear.lora_A:
                weight = weight + linear.get_delta_weight(name).to(weight.dtype)
    return weight, base.bias


class GptOssRunner:
    """Prefill and decode over a static cache, calling into a loaded `GptOssForCausalLM`."""

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
        self.heads: int = config.num_attention_heads
        self.kv_heads: int = config.num_key_value_heads
        self.head_dim: int = config.head_dim
        self.top_k: int = config.num_experts_per_tok
        self.num_experts: int = config.num_local_experts
        self.dtype = self.head.weight.dtype
        self.device = self.head.weight.device
        for layer in self.layers:
            experts = layer.mlp.experts
            if not hasattr(experts, "gate_up_proj") and not hasattr(experts, "grouped_linears"):
                raise ValueError("fast paths need plain experts (no LoRA on the expert weights)")
            attn = layer.self_attn
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj) if fold_lora else ():
                if any(getattr(proj, "use_dora", {}).values()) or any(getattr(proj, "lora_bias", {}).values()):
                    raise ValueError("fold_lora supports plain LoRA (no DoRA, no lora_bias)")
        self.fold_lora = fold_lora
        self.folded: list[FoldedProjections] | None = None

    @torch.no_grad()
    def refresh_folded(self) -> None:
        """Rewrite the folded projections from the current weights (after a training step), a
        layer at a time. The buffers keep their memory from call to call, so a captured CUDA graph
        reads the new values."""
        if not self.fold_lora:
            return
        if self.folded is None:
            self.folded = [FoldedProjections.of(layer.self_attn) for layer in self.layers]
            return
        for mine, layer in zip(self.folded, self.layers):
            mine.copy_(FoldedProjections.of(layer.self_attn))

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
    ) -> torch.Tensor:
        """Run `hidden [B, S, H]` (embedded tokens at cache slots `write_slots [S]`) through every
        layer, writing their keys and values into `cache`; returns the final-norm hidden states."""
        for i, layer in enumerate(self.layers):
            residual = hidden
            h = layer.input_layernorm(hidden)
            h = self.attention(layer.self_attn, h, cos, sin, write_slots, masks[self.layer_types[i]], cache, i)
            hidden = residual + h
            residual = hidden
            h = layer.post_attention_layernorm(hidden)
            hidden = residual + self.moe(layer.mlp, h)
        return self.norm(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits `[B, V]` of the last position only."""
        return self.head(hidden[:, -1]).float()

    def attention(
        self,
        attn: nn.Module,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        write_slots: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache,
        layer: int,
    ) -> torch.Tensor:
        batch, seq, _ = x.shape
        groups = self.heads // self.kv_heads
        folded = self.folded[layer] if self.folded is not None else None
        if folded is not None:
            q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
            q, k, v = F.linear(x, folded.qkv_weight, folded.qkv_bias).split([q_size, kv_size, kv_size], dim=-1)
        else:
            q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q = q.reshape(batch, seq, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.reshape(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        keys, values = cache.keys[layer], cache.values[layer]
        keys.index_copy_(2, write_slots, k)
        values.index_copy_(2, write_slots, v)

        # Query head h reads kv head h // groups: view queries as [B, kv_heads, groups * S, D].
        q = q.reshape(batch, self.kv_heads, groups * seq, self.head_dim)
        scores = torch.matmul(q, keys.transpose(-1, -2)).float() * attn.scaling
        scores = scores.view(batch, self.kv_heads, groups, seq, -1) + mask.view(batch, 1, 1, seq, -1)
        sinks = attn.sinks.float().view(1, self.kv_heads, groups, 1, 1).expand(batch, -1, -1, seq, 1)
        probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
        probs = probs.to(values.dtype).view(batch, self.kv_heads, groups * seq, -1)
        out = torch.matmul(probs, values).view(batch, self.kv_heads, groups, seq, self.head_dim)
        out = out.permute(0, 3, 1, 2, 4).reshape(batch, seq, self.heads * self.head_dim)
        return F.linear(out, folded.o_weight, folded.o_bias) if folded is not None else attn.o_proj(out)

    def moe(self, mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        router = mlp.router
        logits = F.linear(x, router.weight, router.bias)
        top, chosen = torch.topk(logits, self.top_k, dim=-1)
        weights = torch.softmax(top, dim=-1, dtype=top.dtype)
        return grouped_experts(mlp.experts, x, chosen, weights, self.num_experts).view(shape)


def grouped_experts(
    experts: nn.Module, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor, num_experts: int
) -> torch.Tensor:
    """Sum over each token's chosen experts of `weight * expert(x)`: `x [N, H]`, `chosen [N, k]`."""
    top_k = chosen.shape[1]
    flat = chosen.reshape(-1)
    order = flat.argsort(stable=True)
    token = order // top_k
    expert = flat[order]
    # Pairs per expert without bincount (it would wait on the host): compare with 0..E-1.
    counts = (flat.unsqueeze(1) == torch.arange(num_experts, device=x.device)).sum(0)
    offsets = counts.cumsum(0).to(torch.int32)

    if hasattr(experts, "grouped_linears"):
        gate_up, gate_up_bias, down, down_bias = experts.grouped_linears()
    elif _decode_kernel_applies(x, flat.shape[0], num_experts):
        from .moe_kernels import grouped_linear

        gate_up_bias, down_bias = experts.gate_up_proj_bias, experts.down_proj_bias

        def gate_up(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return grouped_linear(h, offs, weight=experts.gate_up_proj)

        def down(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return grouped_linear(h, offs, weight=experts.down_proj)

    else:
        gate_up_bias, down_bias = experts.gate_up_proj_bias, experts.down_proj_bias

        def gate_up(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return F.grouped_mm(h, experts.gate_up_proj, offs=offs)

        def down(h: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return F.grouped_mm(h, experts.down_proj, offs=offs)

    h = gate_up(x[token].to(gate_up_bias.dtype), offsets) + gate_up_bias[expert]
    h = swiglu(h, experts.alpha, experts.limit)
    out = down(h, offsets) + down_bias[expert]
    out = out * weights.reshape(-1)[order].unsqueeze(1)
    return torch.zeros_like(x).index_add_(0, token, out.to(x.dtype))


def _decode_kernel_applies(x: torch.Tensor, pairs: int, num_experts: int) -> bool:
    return (
        x.is_cuda
        and kernels_enabled()
        and not torch.is_grad_enabled()
        and pairs <= DECODE_PAIRS_PER_EXPERT * num_experts
    )


def swiglu(gate_up: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    """gpt-oss's clamped SwiGLU on interleaved (gate, up) columns."""
    gate, up = gate_up[..., ::2], gate_up[..., 1::2]
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1) * (gate * torch.sigmoid(gate * alpha))


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on `x [B, heads, S, D]` with `cos`, `sin` `[B, S, D/2]` (halves, not pairs)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    first, second = torch.chunk(x, 2, dim=-1)
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
