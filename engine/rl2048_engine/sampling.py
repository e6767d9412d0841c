"""Next-token sampling on the device: temperature, then top-k, top-p and min-p filtering.

The logprob returned for a sampled token is taken under the tempered distribution before the
filters, the distribution the trainer recomputes (`logits / temperature`, full softmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0


def sample_next(
    logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """From `logits [B, V]`, return the sampled ids `[B]` and their logprobs `[B]`."""
    logits = logits.float()
    greedy = settings.temperature == 0.0
    logprobs = torch.log_softmax(logits if greedy else logits / settings.temperature, dim=-1)
    if greedy:
        ids = logprobs.argmax(dim=-1)
    else:
        # multinomial takes unnormalized weights: exp is one pass where a softmax is a few (and
        # its reduction runs one block per row, slow on a 201k vocabulary and a few rows).
        weights = _filter(logprobs, settings).exp()
        ids = torch.multinomial(weights, 1, generator=generator).squeeze(-1)
    return ids, logprobs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def _filter(logprobs: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    """Set the logprobs of filtered-out tokens to -inf (the most likely token always stays)."""
    out = logprobs
    if s.top_k > 0 and s.top_k < out.shape[-1]:
        kth = out.topk(s.top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if s.min_p > 0.0:
        threshold = out.max(dim=-1, keepdim=True).values + math.log(s.min_p)
        out = out.masked_fill(out < threshold, float("-inf"))
    if s.top_p < 1.0:
        sorted_lp, order = out.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_lp, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= s.top_p  # keep the fewest tokens that reach top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out
