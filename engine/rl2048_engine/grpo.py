"""The GRPO loss, as TRL's GRPOTrainer computes it (one micro-batch at a time).

For each completion token t of completion i, with advantage A_i:

    ratio     r  = exp(logp - old_logp)               (old_logp = logp.detach() without one)
    clipped   rc = clamp(r, 1 - epsilon, 1 + epsilon_high)
    two-sided r  = min(r, delta)                      (only when delta is set)
    loss_t       = -min(r * A_i, rc * A_i) + beta * k3  with k3 = exp(ref - logp) - (ref - logp) - 1

Aggregation over the masked tokens (mask: completion tokens; whole truncated completions are
masked out with `mask_truncated_completions`):

    grpo     mean over completions of (sum of loss_t / tokens of the completion), / accum steps
    bnpo     sum of loss_t / tokens of the micro-batch, / accum steps
    dr_grpo  sum of loss_t / (completions x max_completion_length), / accum steps
    dapo     sum of loss_t / tokens of the whole accumulated batch
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .params import LossParams


@dataclass
class GrpoLoss:
    """Every field a scalar tensor: reading one (`float`) waits on the device, so a training step
    reads them once, after its backward."""

    loss: torch.Tensor
    """To call backward on (already divided for gradient accumulation)."""
    token_count: torch.Tensor
    """Masked completion tokens in this micro-batch; the metrics below are means over them."""
    kl: torch.Tensor
    entropy: torch.Tensor
    clip_low: torch.Tensor
    clip_high: torch.Tensor
    clip_region: torch.Tensor


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    entropy: torch.Tensor,
    cfg: LossParams,
    accumulation_steps: int,
    batch_token_count: float | torch.Tensor,
) -> GrpoLoss:
    """Tensors are `[B, C]` (advantages `[B]`); `batch_token_count` counts all micro-batches (a
    number, or a scalar tensor so that nothing waits on the device for it)."""
    eps_low = cfg.epsilon
    eps_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
    adv = advantages.unsqueeze(1)

    old = logprobs.detach() if old_logprobs is None else old_logprobs
    ratio = torch.exp(logprobs - old)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    if cfg.delta is not None:
        ratio = torch.clamp(ratio, max=cfg.delta)
    per_token = -torch.min(ratio * adv, clipped * adv)

    k3 = None
    if ref_logprobs is not None:
        diff = ref_logprobs - logprobs
        k3 = torch.exp(diff) - diff - 1
        if cfg.beta != 0.0:
            per_token = per_token + cfg.beta * k3

    masked = per_token * mask
    if cfg.type == "grpo":
        loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation_steps
    elif cfg.type == "bnpo":
        loss = masked.sum() / mask.sum().clamp(min=1.0) / accumulation_steps
    elif cfg.type == "dr_grpo":
        assert cfg.max_completion_length is not None
        loss = masked.sum() / (mask.shape[0] * cfg.max_completion_length) / accumulation_steps
    else:  # dapo
        loss = masked.sum() / torch.as_tensor(batch_token_count).clamp(min=1.0)

    count = mask.sum().detach()
    denom = count.clamp(min=1.0)

    def masked_mean(x: torch.Tensor) -> torch.Tensor:
        return (x.detach().float() * mask).sum() / denom

    low = (ratio < 1 - eps_low) & (adv < 0)
    high = (ratio > 1 + eps_high) & (adv > 0)
    return GrpoLoss(
        loss=loss,
        token_count=count,
        kl=masked_mean(k3) if k3 is not None else torch.zeros_like(count),
        entropy=masked_mean(entropy),
        clip_low=masked_mean(low),
        clip_high=masked_mean(high),
        clip_region=masked_mean(low | high),
    )
