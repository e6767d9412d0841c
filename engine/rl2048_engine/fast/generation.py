"""Fast batched generation: prefill once, then a decode step replayed from a CUDA graph.

Same contract as `generation.generate` (prompt-major rows, stop tokens kept, `finish_reason`,
logprobs under the tempered distribution, seeded sampling with `sampling.sample_next`). What
changes is how a step runs:

- a static KV cache (`forward.KVCache`) sized once per batch shape, so shapes never change;
- on CUDA the decode step (all layers, final norm, LM head for the last position) runs the
  layer functions through `torch.compile` (`compiled`), which fuses most of its small kernels,
  and is captured once in a CUDA graph and replayed: one launch per token instead of hundreds;
- sampling stays on the GPU; the host looks at the stop flags only every `CHECK_EVERY` steps.

The graph and cache are kept for the next call with the same batch and cache size (sizes are
rounded up to `SLOT_ROUNDING` so that they repeat); LoRA weights updated in place by the
optimizer are seen by the graph, since it reads the parameters' own memory (with `fold_lora`,
the folded projections, which each call rewrites in place).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from ..generation import Completion, left_pad
from ..logprobs import round_up
from ..sampling import SamplingSettings, sample_next
from .forward import EAGER, GptOssRunner, KVCache, compiled_functions

CHECK_EVERY = 16
"""Decode steps between two looks (a host sync) at whether every row has stopped."""
SLOT_ROUNDING = 64


@dataclass
class _DecodeState:
    """Static buffers the captured step reads and writes."""

    cache: KVCache
    cos: torch.Tensor  # [T, D/2] rope table
    sin: torch.Tensor
    pad: torch.Tensor  # [B] left padding of each row
    slot: torch.Tensor  # [1] cache slot the step writes
    hidden: torch.Tensor  # [B, 1, H] embedded input token
    logits: torch.Tensor | None = None  # [B, V] output
    graph: torch.cuda.CUDAGraph | None = None


class FastGenerator:
    """`use_graph` and `compiled` default to on for CUDA (the prefill compiled for any prompt
    width, the decode step for its fixed shapes)."""

    def __init__(
        self,
        causal_lm: PreTrainedModel,
        use_graph: bool | None = None,
        fold_lora: bool = False,
        compiled: bool | None = None,
    ) -> None:
        self.runner = GptOssRunner(causal_lm, fold_lora=fold_lora)
        cuda = self.runner.device.type == "cuda"
        self.use_graph = cuda if use_graph is None else use_graph
        compile_ = cuda if compiled is None else compiled
        self.fns = compiled_functions(combo_kernels=cuda) if compile_ else EAGER
        self.prefill_fns = compiled_functions(dynamic=True) if compile_ else EAGER  # prompt widths vary
        self.state: _DecodeState | None = None

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        n: int,
        max_new_tokens: int,
        settings: SamplingSettings,
        stop_token_ids: list[int],
        generator: torch.Generator,
    ) -> list[Completion]:
        runner, device = self.runner, self.runner.device
        runner.refresh()  # the weights may have changed since the last call
        rows = [p for p in prompts for _ in range(n)]
        batch = len(rows)
        pad_id = stop_token_ids[0] if stop_token_ids else 0
        ids, mask = left_pad(rows, pad_id, device)
        width = ids.shape[1]
        slots = round_up(width + max_new_tokens, SLOT_ROUNDING)
        state = self._state(batch, slots)
        state.pad.copy_((mask == 0).sum(-1))

        # Prefill: the whole prompt in one pass; logits for the last position only.
        positions = (torch.arange(width, device=device).unsqueeze(0) - state.pad.unsqueeze(1)).clamp(min=0)
        prompt_slots = torch.arange(width, device=device)
        hidden = runner.forward(
            runner.embed(ids),
            state.cos[positions],
            state.sin[positions],
            prompt_slots,
            runner.masks(prompt_slots, state.pad, slots),
            state.cache,
            self.prefill_fns,
        )
        logits = runner.logits(hidden)

        stops = torch.tensor(stop_token_ids or [-1], device=device)
        out_ids = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
        out_logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            next_ids, next_logprobs = sample_next(logits, settings, generator)
            next_ids = torch.where(done, pad_id, next_ids)
            out_ids[:, step] = next_ids
            out_logprobs[:, step] = next_logprobs
            lengths += (~done).long()
            done |= torch.isin(next_ids, stops)
            last = step == max_new_tokens - 1
            if last or ((step + 1) % CHECK_EVERY == 0 and bool(done.all())):
                break
            state.hidden.copy_(runner.embed(next_ids.unsqueeze(1)))
            state.slot.fill_(width + step)
            logits = self._decode(state)

        ids_list, lp_list = out_ids.tolist(), out_logprobs.tolist()
        return [
            Completion(
                prompt_index=row // n,
                ids=ids_list[row][:length],
                logprobs=lp_list[row][:length],
                finish_reason="stop" if stopped else "length",
            )
            for row, (length, stopped) in enumerate(zip(lengths.tolist(), done.tolist()))
        ]

    def _state(self, batch: int, slots: int) -> _DecodeState:
        state = self.state
        if state is not None and state.pad.shape[0] == batch and state.cache.slots == slots:
            return state
        self.state = None  # free the old cache and graph before allocating new ones
        runner, device = self.runner, self.runner.device
        cos, sin = runner.rope_table(slots)
        hidden_size = runner.embed.weight.shape[1]
        self.state = _DecodeState(
            cache=KVCache.empty(runner, batch, slots),
            cos=cos,
            sin=sin,
            pad=torch.zeros(batch, dtype=torch.long, device=device),
            slot=torch.full((1,), slots - 1, dtype=torch.long, device=device),
            hidden=torch.zeros((batch, 1, hidden_size), dtype=runner.dtype, device=device),
        )
        return self.state

    def _step(self, state: _DecodeState) -> torch.Tensor:
        runner = self.runner
        positions = (state.slot - state.pad).clamp(min=0).unsqueeze(1)  # [B, 1]
        hidden = runner.forward(
            state.hidden,
            state.cos[positions],
            state.sin[positions],
            state.slot,
            runner.masks(state.slot, state.pad, state.cache.slots),
            state.cache,
            self.fns,
        )
        return runner.logits(hidden)

    def _decode(self, state: _DecodeState) -> torch.Tensor:
        if not self.use_graph:
            return self._step(state)
        if state.graph is None:
            self._capture(state)
        assert state.graph is not None and state.logits is not None
        state.graph.replay()
        return state.logits

    def _capture(self, state: _DecodeState) -> None:
        """Warm up on a side stream (cuBLAS handles, workspaces), then capture one step.

        The warm-up writes the slot the state points at; the caller sets it before each step,
        and a slot is always written by its own step before any step reads it."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step(state)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            state.logits = self._step(state)
        state.graph = graph
