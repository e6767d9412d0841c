"""Embeddings offloaded to CPU memory: the table stays on the CPU, the looked-up rows move.

The seed offloads gpt-oss-20b's embedding table (201k x 2880, about 1.2 GB in bf16) to save
GPU memory. Hooks keep the module and its parameter names as they are, so saving and PEFT see
an ordinary `nn.Embedding`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def offload_embeddings(embedding: nn.Module, device: torch.device) -> None:
    """Move `embedding` to the CPU; its outputs still arrive on `device`."""
    embedding.to("cpu")

    def ids_to_cpu(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].to("cpu"), *args[1:])

    def rows_to_device(_module: nn.Module, _args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        return out.to(device, non_blocking=True)

    embedding.register_forward_pre_hook(ids_to_cpu)
    embedding.register_forward_hook(rows_to_device)
