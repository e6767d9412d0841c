"""Offloaded embeddings: the table in CPU memory, the rows where the model runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rl2048_engine.offload import offload_embeddings

CUDA = pytest.mark.gpu(reason="the GPU lookup of a pinned table needs CUDA")


def table(dtype: torch.dtype = torch.bfloat16) -> nn.Embedding:
    embedding = nn.Embedding(1000, 72, dtype=dtype)  # 72 columns: a partial column block
    nn.init.normal_(embedding.weight, generator=torch.Generator().manual_seed(0))
    return embedding


def test_a_trainable_table_is_looked_up_on_the_cpu_and_gets_its_gradient() -> None:
    embedding, reference = table(torch.float32), table(torch.float32)
    offload_embeddings(embedding, torch.device("cpu"))
    ids = torch.tensor([[3, 999, 3], [0, 5, 7]])
    out, want = embedding(ids), reference(ids)
    assert torch.equal(out, want)
    out.pow(2).sum().backward()
    want.pow(2).sum().backward()
    assert embedding.weight.grad is not None and reference.weight.grad is not None
    assert torch.equal(embedding.weight.grad, reference.weight.grad)


@CUDA
def test_a_frozen_table_is_read_from_pinned_memory_by_the_gpu_without_waiting() -> None:
    embedding = table().requires_grad_(False)
    on_gpu = table().cuda()
    offload_embeddings(embedding, torch.device("cuda"))
    assert embedding.weight.device.type == "cpu" and embedding.weight.is_pinned()
    ids = torch.randint(0, 1000, (4, 9), device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a copy of the ids to the host would raise
    try:
        out = embedding(ids)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert out.device.type == "cuda" and out.shape == (4, 9, 72)
    assert torch.equal(out, on_gpu(ids))


@CUDA
def test_the_gpu_lookup_replays_in_a_cuda_graph() -> None:
    embedding = table().requires_grad_(False)
    on_gpu = table().cuda()
    offload_embeddings(embedding, torch.device("cuda"))
    ids = torch.zeros(8, dtype=torch.long, device="cuda")
    embedding(ids)  # compile the kernel outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = embedding(ids)
    for seed in range(3):
        ids.copy_(torch.randint(0, 1000, (8,), generator=torch.Generator().manual_seed(seed)))
        graph.replay()
        assert torch.equal(out, on_gpu(ids))
