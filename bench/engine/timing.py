"""What the GPU benchmarks share: a kernel's median time and a relative error."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch


def median_us(fn: Callable[[], object], repeat: int = 20, warmup: int = 3) -> float:
    """Median microseconds of `fn` on the GPU (CUDA events), after `warmup` calls. The events
    bracket one call, so the time includes the host's launch of its kernels (for one Triton
    kernel, up to ~30 us on the H200 machines): an upper bound for short kernels; Nsight
    Compute or CUDA-graph replays time the kernels alone (bench/RESULTS.md)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return statistics.median(times)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


def graph_us(fn: Callable[[], object], calls: int = 20, replays: int = 7) -> float:
    """Median microseconds a call of `fn` over `replays` replays of a CUDA graph that holds
    `calls` calls: the kernels' own time and the gaps between them, no host launch."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / calls)
    return statistics.median(times)
