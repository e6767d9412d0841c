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

It also runs batches whose rows share prompts (`logprobs.make_batch(share_prompts=True)`: each
distinct prompt once, then every completion, as one sequence). `attention_masks` then gives each
layer type a `PromptMasks`, and the attention runs in two parts: the prompts' queries over their
own keys, and each completion's queries over its prompt's keys followed by its own. Everything
else in a layer works token by token, so it never sees the difference, and a prompt's keys and
values get the gradients of every completion that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ..loading import LoadedModel
from ..logprobs import Batch

FAST_ATTENTION = "rl2048_sinks"  # transformers checks names holding "sdpa" against gpt-oss (no SDPA there)
EXTRA_DIMS = 8
"""The sink's dimension plus padding, so the head dimension stays a multiple of 8."""


@dataclass
class PromptMasks:
    """One layer type's masks for a batch with shared prompts (boolean, True: attend)."""

    prompts: torch.Tensor  # [G, 1, P, P] each distinct prompt's queries over its keys
    completions: torch.Tensor  # [B, 1, C, P + C] each completion's queries over its prompt's keys, then its own
    group: torch.Tensor  # [B] the prompt each completion continues

    def tensors(self) -> list[torch.Tensor]:
        return [self.prompts, self.completions, self.group]


Masks = dict[str, torch.Tensor | PromptMasks] | None


def sdpa_with_sinks(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | PromptMasks | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: `query [B, H, L, D]`, `key` and `value`
    `[B, kv_heads, S, D]`, `attention_mask` boolean `[B, 1, L, S]` (True: attend); returns
    `[B, L, H, D]`. With `PromptMasks`, one sequence `[1, ., T, D]` of shared prompts, then
    completions."""
    if not isinstance(attention_mask, PromptMasks):
        return _attend(module, query, key, value, attention_mask, scaling, dropout), None
    m = attention_mask
    groups, width = m.prompts.shape[0], m.prompts.shape[2]
    rows, longest = m.completions.shape[0], m.completions.shape[2]

    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[1, heads, T, D]` -> prompts `[G, heads, P, D]` and completions `[B, heads, C, D]`."""
        prompts, completions = x[0].split([groups * width, rows * longest], dim=1)
        return prompts.unflatten(1, (groups, width)).transpose(0, 1), completions.unflatten(1, (rows, longest)).transpose(0, 1)

    (q_prompts, q_completions), (k_prompts, k_completions), (v_prompts, v_completions) = map(split, (query, key, value))
    prompts = _attend(module, q_prompts, k_prompts, v_prompts, m.prompts, scaling, dropout)
    k_completions = torch.cat([k_prompts.index_select(0, m.group), k_completions], dim=2)
    v_completions = torch.cat([v_prompts.index_select(0, m.group), v_completions], dim=2)
    completions = _attend(module, q_completions, k_completions, v_completions, m.completions, scaling, dropout)
    return torch.cat([prompts.flatten(0, 1), completions.flatten(0, 1)]).unsqueeze(0), None


def _attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float,
) -> torch.Tensor:
    """Attention with the module's sinks, `[B, L, H, D]` (`sdpa_with_sinks`'s plain case)."""
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
    return out[..., :dim].transpose(1, 2).contiguous()


def _mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """transformers' SDPA mask, never skipped for plain causal attention: the sink key breaks
    the alignment that `is_causal` assumes."""
    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


def attention_masks(causal_lm: PreTrainedModel, batch: Batch) -> Masks:
    """The decoder's masks per layer type for `batch`, as `sdpa_with_sinks` takes them: True where
    a query attends (causal, not padding, and within the window on sliding layers); boolean
    `[B, 1, L, L]`, or `PromptMasks` for a batch with shared prompts. Built from device tensors
    only, where transformers copies a scalar from the host, which a CUDA graph cannot hold. None
    when the model does not run `sdpa_with_sinks` (its attention takes other masks)."""
    config = causal_lm.config
    if config._attn_implementation != FAST_ATTENTION:
        if batch.shared is not None:
            raise ValueError("shared prompts need the model's attention to be `sdpa_with_sinks` (use_fast_attention)")
        return None
    windows = {"full_attention": None, "sliding_attention": config.sliding_window}
    shared = batch.shared
    if shared is None:
        positions = batch.positions[:, None, :]  # [B, 1, L] of the keys
        real = batch.attention_mask.bool()[:, None, None, :]
        return {kind: _allowed(positions.transpose(1, 2), positions, window).unsqueeze(1) & real for kind, window in windows.items()}
    groups, rows, longest = shared.prompt_lengths.shape[0], shared.group.shape[0], batch.targets.shape[1]
    width = (batch.input_ids.shape[1] - rows * longest) // groups
    prompt_positions = torch.arange(width, device=batch.input_ids.device)
    completion_positions = batch.positions[0, groups * width :].view(rows, longest)
    real = batch.attention_mask[0].bool()
    prompt_real, own_real = real[: groups * width].view(groups, width), real[groups * width :].view(rows, longest)
    # A completion's keys: its prompt's, then its own.
    key_positions = torch.cat([prompt_positions.expand(rows, -1), completion_positions], dim=1)  # [B, P + C]
    key_real = torch.cat([prompt_real.index_select(0, shared.group), own_real], dim=1)

    def masks(window: int | None) -> PromptMasks:
        prompts = _allowed(prompt_positions[:, None], prompt_positions[None, :], window) & prompt_real[:, None, :]
        completions = _allowed(completion_positions[:, :, None], key_positions[:, None, :], window) & key_real[:, None, :]
        return PromptMasks(prompts.unsqueeze(1), completions.unsqueeze(1), shared.group)

    return {kind: masks(window) for kind, window in windows.items()}


def mask_tensors(masks: Masks) -> list[torch.Tensor]:
    """The tensors in `attention_masks`' masks (a CUDA graph's inputs)."""
    return [t for m in (masks or {}).values() for t in (m.tensors() if isinstance(m, PromptMasks) else [m])]


def shares_prompts(loaded: LoadedModel) -> bool:
    """Whether `loaded`'s forwards can take batches with shared prompts: the policy (and the
    reference copy, if any) run `sdpa_with_sinks`."""
    models = [loaded.causal_lm] + ([loaded.reference] if loaded.reference is not None else [])
    return all(m.config._attn_implementation == FAST_ATTENTION for m in models)


def _allowed(query_positions: torch.Tensor, key_positions: torch.Tensor, window: int | None) -> torch.Tensor:
    """Whether a query at one position may attend a key at another (broadcast): causal, and
    within `window` positions when given."""
    allowed = key_positions <= query_positions
    return allowed if window is None else allowed & (query_positions - key_positions < window)


def use_fast_attention(causal_lm: PreTrainedModel) -> None:
    """Run the model's attention through `sdpa_with_sinks` (gpt-oss: the module has `sinks`)."""
    AttentionInterface.register(FAST_ATTENTION, sdpa_with_sinks)
    AttentionMaskInterface.register(FAST_ATTENTION, _mask)
    causal_lm.set_attn_implementation(FAST_ATTENTION)
