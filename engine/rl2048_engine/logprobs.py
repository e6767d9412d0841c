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
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

CHUNK_TOKENS = 1024
"""Completion positions per LM-head chunk."""


@dataclass
class SharedPrompts:
    """How a batch made with `share_prompts` lies: each distinct prompt once, then every
    completion (`make_batch`)."""

    prompt_lengths: torch.Tensor  # [G] each distinct prompt's length
    group: torch.Tensor  # [B] the distinct prompt each row continues


@dataclass
class Batch:
    """Prompt + completion rows for one forward: right-padded rows `[B, L]`, or, with
    `shared`, one row of every distinct prompt and then every completion `[1, T]`."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L] 1 on real tokens
    positions: torch.Tensor  # [B, L] each token's position in its sequence
    targets: torch.Tensor  # [B, C] completion ids, 0 past a row's end
    source: torch.Tensor  # [B, C] index in the flattened [B * L] tokens of the one predicting each target
    completion_mask: torch.Tensor  # [B, C] 1.0 on real completion tokens
    valid: torch.Tensor  # [N] flat indices into [B * C] of the real completion tokens, row-major
    # (of every completion position in a batch made with `pad_to` > 1)
    shared: SharedPrompts | None = None

    def tensors(self) -> list[torch.Tensor]:
        out = [self.input_ids, self.attention_mask, self.positions, self.targets, self.source, self.completion_mask, self.valid]
        return out + ([] if self.shared is None else [self.shared.prompt_lengths, self.shared.group])


def make_batch(
    pairs: list[tuple[list[int], list[int]]], device: torch.device, pad_to: int = 1, share_prompts: bool = False
) -> Batch:
    """With `pad_to` > 1 the shapes repeat from batch to batch (for CUDA graphs): the width and
    the completion length are rounded up to multiples of it, and `valid` holds every completion
    position, padding included (the completion mask keeps the padding out of any loss).

    With `share_prompts`, rows that start with the same prompt share one copy of it: the batch is
    one sequence of every distinct prompt (each padded to the longest), then every completion
    (each padded to the longest), and only attention that knows this layout
    (`fast.attention.sdpa_with_sinks` with `fast.attention.attention_masks`) can run it. GRPO's
    completions come `num_generations` to a prompt, so the decoder sees fewer tokens."""
    longest = round_up(max(len(c) for _, c in pairs), pad_to)
    targets = torch.zeros((len(pairs), longest), dtype=torch.long)
    source = torch.zeros((len(pairs), longest), dtype=torch.long)
    cmask = torch.zeros((len(pairs), longest), dtype=torch.float32)
    for i, (_, completion) in enumerate(pairs):
        targets[i, : len(completion)] = torch.tensor(completion)
        cmask[i, : len(completion)] = 1.0
    valid = torch.arange(cmask.numel()) if pad_to > 1 else cmask.flatten().nonzero().squeeze(1)
    shared = None
    if share_prompts:
        prompts, group = distinct_rows([p for p, _ in pairs])
        width = round_up(max(len(p) for p in prompts), pad_to)
        rows = [list(p) for p in prompts] + [c for _, c in pairs]
        sizes = [width] * len(prompts) + [longest] * len(pairs)
        ids = torch.tensor([t for row, size in zip(rows, sizes) for t in row + [0] * (size - len(row))]).unsqueeze(0)
        mask = torch.tensor([m for row, size in zip(rows, sizes) for m in [1] * len(row) + [0] * (size - len(row))]).unsqueeze(0)
        prompt_lengths = torch.tensor([len(p) for p in prompts])
        completion_positions = prompt_lengths[group].view(-1, 1) + torch.arange(longest)  # [B, C]
        positions = torch.cat([torch.arange(width).repeat(len(prompts)), completion_positions.flatten()])
        for i, (prompt, completion) in enumerate(pairs):  # the prompt's last token, then the completion's
            start = len(prompts) * width + i * longest  # the completion's first token
            predictors = [group[i] * width + len(prompt) - 1, *range(start, start + len(completion) - 1)]
            source[i, : len(completion)] = torch.tensor(predictors[: len(completion)])
        shared = SharedPrompts(prompt_lengths.to(device), torch.tensor(group, device=device))
    else:
        width = round_up(max(len(p) + len(c) for p, c in pairs), pad_to)
        ids = torch.zeros((len(pairs), width), dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (prompt, completion) in enumerate(pairs):
            row = prompt + completion
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
            source[i, : len(completion)] = i * width + torch.arange(len(prompt) - 1, len(row) - 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
    tensors = (ids, mask, positions.view_as(ids), targets, source, cmask, valid)
    return Batch(*(t.to(device) for t in tensors), shared=shared)


def distinct_rows(rows: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct rows in the order they first come, and the index among them of each row."""
    index: dict[tuple[int, ...], int] = {}
    of_each = [index.setdefault(tuple(row), len(index)) for row in rows]
    return [list(row) for row in index], of_each


def round_up(n: int, multiple: int) -> int:
    """`n` rounded up to a multiple of `multiple`."""
    return -(-n // multiple) * multiple


def token_logprobs(
    causal_lm: PreTrainedModel,
    batch: Batch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = CHUNK_TOKENS,
    attention_masks: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs `[B, C]` of the batch's completion tokens (and entropies `[B, C]` if asked).

    Call it on the transformers model (PEFT's LoRA layers live inside it); positions outside
    `batch.valid` get 0. `attention_masks` (per layer type, as the decoder takes them) replace
    the ones transformers would build from `batch.attention_mask`.
    """
    if batch.shared is not None and attention_masks is None:
        raise ValueError("a batch with shared prompts needs the attention masks made for it")
    hidden = causal_lm.get_decoder()(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask if attention_masks is None else attention_masks,
        position_ids=batch.positions,
        use_cache=False,
    ).last_hidden_state
    flat_hidden = hidden.flatten(0, 1).index_select(0, batch.source.flatten().index_select(0, batch.valid))
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
