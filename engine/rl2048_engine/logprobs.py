"""Per-token logprobs (and entropies) of completions given their prompts.

Sequences are `prompt + completion`, right-padded into one batch. The decoder runs once; the
LM head and log-softmax run only at the positions that predict completion tokens, a chunk of
positions at a time. When gradients are on, each chunk is checkpointed, so the logits of a
201k-token vocabulary never sit in memory for the whole batch: backward recomputes them.

Nothing here waits on the device: which positions hold completion tokens is known when the
batch is built (`Batch.valid`), so a training step can queue its forward, loss and backward
without stopping for the GPU to catch up (boolean indexing would wait for a count).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

CHUNK_TOKENS = 1024
"""Completion positions per LM-head chunk."""


@dataclass
class Batch:
    """A right-padded batch of prompt + completion rows."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    targets: torch.Tensor  # [B, C] completion ids, 0 past a row's end
    source: torch.Tensor  # [B, C] index in the row of the position predicting each target
    completion_mask: torch.Tensor  # [B, C] 1.0 on real completion tokens
    valid: torch.Tensor  # [N] flat indices into [B * C] of the real completion tokens, row-major
    # (of every completion position in a batch made with `pad_to` > 1)


def make_batch(pairs: list[tuple[list[int], list[int]]], device: torch.device, pad_to: int = 1) -> Batch:
    """With `pad_to` > 1 the shapes repeat from batch to batch (for CUDA graphs): the width and
    the completion length are rounded up to multiples of it, and `valid` holds every completion
    position, padding included (the completion mask keeps the padding out of any loss)."""
    width = round_up(max(len(p) + len(c) for p, c in pairs), pad_to)
    longest = round_up(max(len(c) for _, c in pairs), pad_to)
    ids = torch.zeros((len(pairs), width), dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    targets = torch.zeros((len(pairs), longest), dtype=torch.long)
    source = torch.zeros((len(pairs), longest), dtype=torch.long)
    cmask = torch.zeros((len(pairs), longest), dtype=torch.float32)
    for i, (prompt, completion) in enumerate(pairs):
        row = prompt + completion
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        targets[i, : len(completion)] = torch.tensor(completion)
        source[i, : len(completion)] = torch.arange(len(prompt) - 1, len(row) - 1)
        cmask[i, : len(completion)] = 1.0
    valid = torch.arange(cmask.numel()) if pad_to > 1 else cmask.flatten().nonzero().squeeze(1)
    return Batch(*(t.to(device) for t in (ids, mask, targets, source, cmask, valid)))


def round_up(n: int, multiple: int) -> int:
    """`n` rounded up to a multiple of `multiple`."""
    return -(-n // multiple) * multiple


def token_logprobs(
    causal_lm: PreTrainedModel,
    batch: Batch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = CHUNK_TOKENS,
    attention_masks: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs `[B, C]` of the batch's completion tokens (and entropies `[B, C]` if asked).

    Call it on the transformers model (PEFT's LoRA layers live inside it); positions outside
    `batch.valid` get 0. `attention_masks` (per layer type, as the decoder takes them) replace
    the ones transformers would build from `batch.attention_mask`.
    """
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = causal_lm.get_decoder()(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask if attention_masks is None else attention_masks,
        position_ids=positions,
        use_cache=False,
    ).last_hidden_state
    picked = hidden.gather(1, batch.source.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # [B, C, H]
    flat_hidden = picked.flatten(0, 1).index_select(0, batch.valid)
    flat_targets = batch.targets.flatten().index_select(0, batch.valid)
    head = causal_lm.get_output_embeddings()

    logprob_chunks, entropy_chunks = [], []
    for start in range(0, flat_hidden.shape[0], chunk_tokens):
        h = flat_hidden[start : start + chunk_tokens]
        t = flat_targets[start : start + chunk_tokens]
        if torch.is_grad_enabled():
            lp, ent = checkpoint(_head_logprobs, head, h, t, temperature, with_entropy, use_reentrant=False)
        else:
            lp, ent = _head_logprobs(head, h, t, temperature, with_entropy)
        logprob_chunks.append(lp)
        entropy_chunks.append(ent)

    logprobs = _unflatten(torch.cat(logprob_chunks), batch)
    if not with_entropy:
        return logprobs, None
    return logprobs, _unflatten(torch.cat(entropy_chunks), batch)


def _unflatten(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """`values [N]` (one per real completion token) back to `[B, C]`, 0 elsewhere."""
    flat = torch.zeros(batch.completion_mask.numel(), dtype=values.dtype, device=values.device)
    return flat.index_copy(0, batch.valid, values).view_as(batch.completion_mask)


def _head_logprobs(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():  # a metric only, as in TRL
        entropy = -(logp.exp() * logp).sum(-1) if with_entropy else torch.zeros_like(picked)
    return picked, entropy
