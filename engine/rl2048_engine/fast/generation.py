"""Fast batched generation: prefill once, then each token's step replayed from a CUDA graph.

Same contract as `generation.generate` (prompt-major rows, stop tokens kept, `finish_reason`,
logprobs under the tempered distribution, seeded sampling). What changes is how a step runs:

- a static KV cache (`forward.KVCache`) sized once per batch shape, so shapes never change;
- on CUDA the decode step (all layers, final norm, LM head for the last position) runs the
  layer functions through `torch.compile` (`compiled`), which fuses most of its small kernels,
  and is captured once in a CUDA graph and replayed: one launch per token instead of hundreds;
- for plain temperature sampling on CUDA (the seed's settings) the token is drawn by the fused
  sampler (`sampler.py`) and the whole token step (sample, record the token, embed it, decode)
  is one graph; with top-k, top-p or min-p, `sampling.sample_next` runs between the replays of
  the decode step. Either way the host looks at the stop flags only every `CHECK_EVERY` steps.

The graphs and cache are kept for the next call with the same batch and cache size (sizes are
rounded up to `SLOT_ROUNDING` so that they repeat); LoRA weights updated in place by the
optimizer are seen by the graphs, since they read the parameters' own memory (with `fold_lora`,
the folded projections, which each call rewrites in place).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from ..generation import Completion, left_pad
from ..logprobs import distinct_rows, round_up
from ..sampling import SamplingSettings, sample_next
from . import sampler
from .forward import EAGER, GptOssRunner, KVCache, compiled_functions

CHECK_EVERY = 16
"""Decode steps between two looks (a host sync) at whether every row has stopped."""
SLOT_ROUNDING = 64
STOP_SLOTS = 16
"""Stop ids the state holds (more take a state with room for them, a multiple of this)."""


@dataclass
class _DecodeState:
    """Static buffers the captured steps read and write: the cache and the decode step's inputs
    and output, and what a token step records (the sampled ids, their logprobs, the rows'
    lengths and whether each has stopped)."""

    cache: KVCache
    cos: torch.Tensor  # [T, D/2] rope table
    sin: torch.Tensor
    pad: torch.Tensor  # [B] left padding of each row
    width: torch.Tensor  # [1] the prompts' padded width
    slot: torch.Tensor  # [1] cache slot the decode step writes (width + step)
    hidden: torch.Tensor  # [B, 1, H] embedded input token
    logits: torch.Tensor  # [B, V] float32: the logits the next token is sampled from
    step: torch.Tensor  # [1] the token being sampled
    ids: torch.Tensor  # [B, T] sampled ids (pad_id once a row stopped)
    logprobs: torch.Tensor  # [B, T] their logprobs
    lengths: torch.Tensor  # [B]
    done: torch.Tensor  # [B] bool
    stops: torch.Tensor  # [S] stop ids, -1 past the given ones
    pad_id: torch.Tensor  # [1]
    seed: torch.Tensor  # [1] int64: with `step`, the key of the fused sampler's random numbers
    inv_temperature: torch.Tensor  # [1] float32
    noise: torch.Tensor  # [1] float32: 1 to sample, 0 for greedy
    decode_graph: torch.cuda.CUDAGraph | None = None  # the decode step
    token_graph: torch.cuda.CUDAGraph | None = None  # sampling (fused sampler), recording, decode step


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
        # Each distinct prompt is prefilled once (GRPO samples n completions of a prompt, and the
        # product asks for one prompt in every group); its cache rows and logits are then copied to
        # every row that starts with it.
        distinct, of_prompt = distinct_rows(prompts)
        source = torch.tensor([i for i in of_prompt for _ in range(n)], device=device)
        pad_id = stop_token_ids[0] if stop_token_ids else 0
        ids, distinct_mask = left_pad(distinct, pad_id, device)
        mask = distinct_mask.index_select(0, source)
        width = ids.shape[1]
        slots = round_up(width + max_new_tokens, SLOT_ROUNDING)
        state = self._state(len(source), slots, round_up(max(len(stop_token_ids), 1), STOP_SLOTS))
        # The fused sampler on CUDA for plain temperature sampling: then a whole token step
        # (sample, record, decode) replays from one graph; else `sample_next` runs eagerly.
        fused = device.type == "cuda" and sampler.applies(settings)
        if self.use_graph:  # captured before the call's values are set: the warm-ups may write them
            state.step.zero_()  # (the token step's warm-ups record at steps 0 and 1, inside the buffers)
            if fused and state.token_graph is None:
                state.token_graph = self._capture(state, lambda: self._token(state, self._fused_sample))
            if not fused and state.decode_graph is None:
                state.decode_graph = self._capture(state, lambda: self._step(state))
        self._start(state, mask, width, stop_token_ids, pad_id, settings, generator)

        # Prefill: each distinct prompt in one pass, into the cache's first rows; logits for the
        # last position only.
        pad = (distinct_mask == 0).sum(-1)
        positions = (torch.arange(width, device=device).unsqueeze(0) - pad.unsqueeze(1)).clamp(min=0)
        prompt_slots = torch.arange(width, device=device)
        first_rows = KVCache([k[: len(distinct)] for k in state.cache.keys], [v[: len(distinct)] for v in state.cache.values])
        hidden = runner.forward(
            runner.embed(ids),
            state.cos[positions],
            state.sin[positions],
            prompt_slots,
            runner.masks(prompt_slots, pad, slots),
            first_rows,
            self.prefill_fns,
        )
        state.logits.copy_(runner.logits(hidden).index_select(0, source))
        if len(distinct) < len(source):
            for cache in (*state.cache.keys, *state.cache.values):
                cache[:, :, :width] = cache[:, :, :width].index_select(0, source)

        def sample_eagerly(state: _DecodeState) -> tuple[torch.Tensor, torch.Tensor]:
            return sample_next(state.logits, settings, generator)

        sample = self._fused_sample if fused else sample_eagerly
        for step in range(max_new_tokens):
            if step == max_new_tokens - 1:
                self._record(state, sample)  # the last token: no decode step after it
                break
            if state.token_graph is not None and fused:
                state.token_graph.replay()
            else:
                self._record(state, sample)
                if state.decode_graph is not None:
                    state.decode_graph.replay()
                else:
                    self._step(state)
            if (step + 1) % CHECK_EVERY == 0 and bool(state.done.all()):
                break

        ids_list, lp_list = state.ids[:, :max_new_tokens].tolist(), state.logprobs[:, :max_new_tokens].tolist()
        return [
            Completion(
                prompt_index=row // n,
                ids=ids_list[row][:length],
                logprobs=lp_list[row][:length],
                finish_reason="stop" if stopped else "length",
            )
            for row, (length, stopped) in enumerate(zip(state.lengths.tolist(), state.done.tolist()))
        ]

    def _state(self, batch: int, slots: int, stop_slots: int) -> _DecodeState:
        state = self.state
        if state is not None and state.pad.shape[0] == batch and state.cache.slots == slots and state.stops.shape[0] == stop_slots:
            return state
        self.state = None  # free the old cache and graphs before allocating new ones
        runner, device = self.runner, self.runner.device
        cos, sin = runner.rope_table(slots)
        hidden_size, vocab = runner.embed.weight.shape[1], runner.head.weight.shape[0]

        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        self.state = _DecodeState(
            cache=KVCache.empty(runner, batch, slots),
            cos=cos,
            sin=sin,
            pad=zeros(batch),
            width=zeros(1),
            slot=zeros(1),
            hidden=zeros(batch, 1, hidden_size, dtype=runner.dtype),
            logits=zeros(batch, vocab, dtype=torch.float32),
            step=zeros(1),
            ids=zeros(batch, slots),
            logprobs=zeros(batch, slots, dtype=torch.float32),
            lengths=zeros(batch),
            done=zeros(batch, dtype=torch.bool),
            stops=zeros(stop_slots),
            pad_id=zeros(1),
            seed=zeros(1),
            inv_temperature=zeros(1, dtype=torch.float32),
            noise=zeros(1, dtype=torch.float32),
        )
        return self.state

    @staticmethod
    def _start(
        state: _DecodeState,
        mask: torch.Tensor,
        width: int,
        stop_token_ids: list[int],
        pad_id: int,
        settings: SamplingSettings,
        generator: torch.Generator,
    ) -> None:
        """Set the call's values in the state (nothing here waits on the device)."""
        state.pad.copy_((mask == 0).sum(-1))
        state.width.fill_(width)
        state.step.zero_()
        state.lengths.zero_()
        state.done.zero_()
        state.ids.fill_(pad_id)
        state.logprobs.zero_()
        state.stops.fill_(-1)
        state.stops[: len(stop_token_ids)] = torch.tensor(stop_token_ids, dtype=torch.long)
        state.pad_id.fill_(pad_id)
        greedy = settings.temperature == 0.0
        state.inv_temperature.fill_(1.0 if greedy else 1.0 / settings.temperature)
        state.noise.fill_(0.0 if greedy else 1.0)
        if state.seed.is_cuda:  # the fused sampler's key, from the caller's generator
            state.seed.copy_(torch.randint(2**62, (1,), generator=generator, device=generator.device))

    def _record(self, state: _DecodeState, sample: Callable[[_DecodeState], tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Sample this step's token of every row, record it, and set the decode step's inputs."""
        ids, logprobs = sample(state)
        ids = torch.where(state.done, state.pad_id, ids)
        state.ids.index_copy_(1, state.step, ids.unsqueeze(1))
        state.logprobs.index_copy_(1, state.step, logprobs.unsqueeze(1))
        state.lengths += (~state.done).long()
        state.done |= (ids.unsqueeze(1) == state.stops).any(1)  # (isin sorts, and waits, past a few stops)
        state.hidden.copy_(self.runner.embed(ids.unsqueeze(1)))
        state.slot.copy_(state.width + state.step)
        state.step += 1

    def _token(self, state: _DecodeState, sample: Callable[[_DecodeState], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._record(state, sample)
        self._step(state)

    @staticmethod
    def _fused_sample(state: _DecodeState) -> tuple[torch.Tensor, torch.Tensor]:
        return sampler.sample(state.logits, state.inv_temperature, state.noise, state.seed, state.step)

    def _step(self, state: _DecodeState) -> None:
        """The decode step: the token in `state.hidden` at `state.slot` to `state.logits`."""
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
        state.logits.copy_(runner.logits(hidden))

    @staticmethod
    def _capture(state: _DecodeState, fn: Callable[[], None]) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (compilation, cuBLAS handles, workspaces), then capture `fn`.

        The warm-ups write the state's buffers, which `_start` sets again before they are read,
        and cache slots, which a step always writes before any step reads them."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph
