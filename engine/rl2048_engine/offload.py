"""Embeddings offloaded to CPU memory: the table stays on the CPU, the looked-up rows move.

The seed offloads gpt-oss-20b's embedding table (201k x 2880, about 1.2 GB in bf16) to save
GPU memory. The table is pinned, and while it is frozen a lookup of ids on the GPU runs on the
GPU, reading its rows from CPU memory (`fast.host_rows`): the ids never go to the host, so a
decode step or a training step does not wait for the device at its first layer, and the lookup
can sit in a CUDA graph. A trainable table (full fine-tuning) is looked up on the CPU, its rows
copied to the device. The module keeps its parameter name and type, so saving and PEFT see an
ordinary `nn.Embedding`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def offload_embeddings(embedding: nn.Embedding, device: torch.device) -> None:
    """Move `embedding` to (pinned) CPU memory; its outputs still arrive on `device`."""
    embedding.to("cpu")
    if device.type == "cuda":
        embedding.weight.data = embedding.weight.data.pin_memory()

    def lookup(ids: torch.Tensor) -> torch.Tensor:
        weight = embedding.weight
        if ids.is_cuda and weight.is_pinned() and not (weight.requires_grad and torch.is_grad_enabled()):
            from .fast.host_rows import gather_rows

            return gather_rows(weight, ids)
        rows = F.embedding(ids.to("cpu"), weight, embedding.padding_idx)
        return rows.to(device, non_blocking=True)

    embedding.forward = lookup  # type: ignore[method-assign]
