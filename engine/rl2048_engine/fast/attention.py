"""gpt-oss attention with learned sinks through PyTorch's fused attention, inside transformers.

transformers runs gpt-oss's attention eagerly: the scores are materialized, the sinks
concatenated onto them, a softmax, two matmuls, each its own kernel forward and backward. A sink
is one more logit per head that joins every query's softmax and adds nothing to the output, so
one more key does the same: the extra key holds 1 in one more dimension (the real keys 0), each
query head holds its `sink / scaling` there, and the key's value is 0. Its logit is then the
head's sink for every query, no mask hides it, and gradients reach the sinks through the queries.
The key is the same for every head, so the query heads still share their kv heads (`enable_gqa`:
keys and values are not repeated per head). Padded to a multiple of 8 dimensions,
`F.scaled_dot_product_attention` runs it fused, forward and backward.

`use_fast_attention(model)` registers it as a transformers attention implementation (with
transformers' own boolean masks) and selects it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

FAST_ATTENTION = "rl2048_sinks"  # transformers checks names holding "sdpa" against gpt-oss (no SDPA there)
EXTRA_DIMS = 8
"""The sink's dimension plus padding, so the head dimension stays a multiple of 8."""


def sdpa_with_sinks(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: `query [B, H, L, D]`, `key` and `value`
    `[B, kv_heads, S, D]`, `attention_mask` boolean `[B, 1, L, S]` (True: attend); returns
    `[B, L, H, D]`."""
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    sink = (module.sinks / scaling).to(query.dtype).view(1, heads, 1, 1).expand(batch, -1, length, 1)
    query = torch.cat([query, sink, query.new_zeros(batch, heads, length, EXTRA_DIMS - 1)], dim=-1)
    sink_key = key.new_zeros(batch, kv_heads, 1, dim + EXTRA_DIMS)
    sink_key[..., dim] = 1.0
    key = torch.cat([F.pad(key, (0, EXTRA_DIMS)), sink_key], dim=2)
    value = F.pad(value, (0, EXTRA_DIMS, 0, 1))  # the sink's value row: zeros
    if attention_mask is not None:
        attention_mask = F.pad(attention_mask, (0, 1), value=True)  # every query sees the sink
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout if module.training else 0.0,
        scale=scaling,
        enable_gqa=heads != kv_heads,
    )
    return out[..., :dim].transpose(1, 2).contiguous(), None


def _mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """transformers' SDPA mask, never skipped for plain causal attention: the sink key breaks
    the alignment that `is_causal` assumes."""
    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


def attention_masks(causal_lm: PreTrainedModel, attention_mask: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The decoder's masks per layer type for `attention_mask [B, L]` (1: a token, 0: padding), as
    `_mask` makes them for `sdpa_with_sinks`: boolean `[B, 1, L, L]`, True where a query attends
    (causal, not padding, and within the window on sliding layers). Built from device tensors only,
    where transformers copies a scalar from the host, which a CUDA graph cannot hold. None when the
    model does not run `sdpa_with_sinks` (its attention takes other masks)."""
    config = causal_lm.config
    if config._attn_implementation != FAST_ATTENTION:
        return None
    i = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    distance = i.view(-1, 1) - i.view(1, -1)  # [query, key]
    full = (distance >= 0) & attention_mask.bool()[:, None, None, :]
    return {"full_attention": full, "sliding_attention": full & (distance < config.sliding_window)}


def use_fast_attention(causal_lm: PreTrainedModel) -> None:
    """Run the model's attention through `sdpa_with_sinks` (gpt-oss: the module has `sinks`)."""
    AttentionInterface.register(FAST_ATTENTION, sdpa_with_sinks)
    AttentionMaskInterface.register(FAST_ATTENTION, _mask)
    causal_lm.set_attn_implementation(FAST_ATTENTION)
