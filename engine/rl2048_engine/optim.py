"""The optimizer (AdamW, 8-bit through bitsandbytes when asked and possible) and the LR schedule."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from .params import OptimParams


def eight_bit_available(device: torch.device) -> bool:
    return device.type == "cuda" and importlib.util.find_spec("bitsandbytes") is not None


def make_optimizer(params: list[nn.Parameter], cfg: OptimParams, device: torch.device) -> tuple[Optimizer, str]:
    """AdamW over `params`; returns it and its name ("adamw_8bit" or "adamw")."""
    kwargs = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps, "weight_decay": cfg.weight_decay}
    if cfg.eight_bit and eight_bit_available(device):
        import bitsandbytes as bnb  # type: ignore[import-not-found]

        return bnb.optim.AdamW8bit(params, **kwargs), "adamw_8bit"
    return torch.optim.AdamW(params, **kwargs), "adamw"  # type: ignore[arg-type]


def make_scheduler(optimizer: Optimizer, cfg: OptimParams) -> LambdaLR:
    if cfg.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.total_steps)
    return get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)
