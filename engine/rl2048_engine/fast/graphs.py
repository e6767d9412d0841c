"""Calls replayed from CUDA graphs, one graph per kind of call and input shape.

A forward and backward of gpt-oss-20b launches about ten thousand kernels, a scoring forward a
few thousand; the host takes longer to launch them than the GPU takes to run them. `CudaGraphs`
captures such a call once per key (its kind, its inputs' shapes and whatever else decides
which kernels it launches) and replays it, one launch for the whole call:

- a key's first call runs as it is (it compiles and warms up), its second is captured, later
  ones copy their inputs into the captured call's and replay;
- a call reads only its inputs (`GraphInputs.tensors()`, all on the device) and the model's
  parameters, and nothing in it may wait on the device;
- its outputs are the captured call's tensors, overwritten by the next replay of any graph
  here (all share one memory pool, as they never run at once): read them before the next call;
- if a capture fails, that kind of call runs as it is from then on, and says so once on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

MAX_GRAPHS = 16
"""Captured calls kept; a key past these runs without a graph."""


class GraphInputs(Protocol):
    def tensors(self) -> list[torch.Tensor]: ...


I = TypeVar("I", bound=GraphInputs)
O = TypeVar("O")


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: Any  # the tensors the graph reads: each call's are copied into them
    outputs: Any


def _nothing() -> None:
    pass


class CudaGraphs:
    def __init__(self) -> None:
        self.pool: tuple[int, int] | None = None  # made at the first capture
        self.graphs: dict[Hashable, _Captured] = {}
        self.seen: set[Hashable] = set()
        self.failed: dict[str, str] = {}  # kind -> why its capture failed
        self.buffers: dict[str, Any] = {}
        """Tensors that captured calls write into and that outlive every call (the update's gradients)."""

    def run(self, kind: str, settings: Hashable, fn: Callable[[I], O], inputs: I, prepare: Callable[[], None] = _nothing) -> O:
        """`fn(inputs)`, replayed from the graph of its kind, its inputs' shapes and `settings`
        (what else `fn` depends on). `prepare` runs before a capture and before each replay (the
        update points the gradients at its static tensors there)."""
        full_key = (kind, tuple(t.shape for t in inputs.tensors()), settings)
        captured = self.graphs.get(full_key)
        if captured is None:
            if kind in self.failed or full_key not in self.seen or len(self.graphs) >= MAX_GRAPHS:
                self.seen.add(full_key)
                return fn(inputs)
            prepare()
            try:
                captured = self._capture(fn, inputs)
            except RuntimeError as err:
                self.failed[kind] = str(err)
                print(f"engine: CUDA graphs for {kind} turned off: {err}", file=sys.stderr, flush=True)
                prepare()  # nothing ran in the capture: start again from where it started
                return fn(inputs)
            self.graphs[full_key] = captured
        else:
            for static, new in zip(captured.inputs.tensors(), inputs.tensors(), strict=True):
                static.copy_(new)
        prepare()
        captured.graph.replay()
        return captured.outputs

    def _capture(self, fn: Callable[[Any], Any], inputs: GraphInputs) -> _Captured:
        if not all(t.is_cuda for t in inputs.tensors()):  # a CUDA graph of CPU work captures nothing
            raise RuntimeError("CUDA graphs capture CUDA work only: these inputs are not on a CUDA device")
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = fn(inputs)
        return _Captured(graph, inputs, outputs)
