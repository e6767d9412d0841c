"""Batched generation: our own decode loop over the KV cache, with left-padded prompts.

All `n` completions of every prompt are decoded together (prompt-major order). Each step feeds
one token per row; a row stops at its first stop token (kept in `ids`, reason "stop") or at
`max_new_tokens` (reason "length"). Sampling runs on the device from a seeded generator, so the
same seed gives the same completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .sampling import SamplingSettings, sample_next


@dataclass
class Completion:
    prompt_index: int
    ids: list[int]
    logprobs: list[float]
    finish_reason: Literal["stop", "length"]


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows to `(ids [B, L], attention_mask [B, L])`, padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def generate(
    model: nn.Module,
    prompts: list[list[int]],
    n: int,
    max_new_tokens: int,
    settings: SamplingSettings,
    stop_token_ids: list[int],
    generator: torch.Generator,
    device: torch.device,
) -> list[Completion]:
    rows = [p for p in prompts for _ in range(n)]
    pad_id = stop_token_ids[0] if stop_token_ids else 0
    ids, prompt_mask = left_pad(rows, pad_id, device)
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    width = ids.shape[1]
    full_mask = torch.cat([prompt_mask, prompt_mask.new_ones((len(rows), max_new_tokens))], dim=-1)
    stops = torch.tensor(stop_token_ids or [-1], device=device)

    batch = len(rows)
    out_ids = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)

    cache = None
    step_ids = ids
    step_positions = positions
    for step in range(max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=full_mask[:, : width + step],
            position_ids=step_positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        next_ids, next_logprobs = sample_next(out.logits[:, -1, :], settings, generator)
        next_ids = torch.where(done, pad_id, next_ids)
        out_ids[:, step] = next_ids
        out_logprobs[:, step] = next_logprobs
        lengths += (~done).long()
        done |= torch.isin(next_ids, stops)
        if bool(done.all()):
            break
        step_ids = next_ids.unsqueeze(-1)
        step_positions = step_positions[:, -1:] + 1

    ids_list = out_ids.tolist()
    lp_list = out_logprobs.tolist()
    completions = []
    for row, (length, stopped) in enumerate(zip(lengths.tolist(), done.tolist())):
        completions.append(
            Completion(
                prompt_index=row // n,
                ids=ids_list[row][:length],
                logprobs=lp_list[row][:length],
                finish_reason="stop" if stopped else "length",
            )
        )
    return completions
