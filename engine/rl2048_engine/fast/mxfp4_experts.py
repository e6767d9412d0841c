"""MXFP4-resident experts: gpt-oss experts stay packed on the GPU (about 4.25 bits a weight).

`MxExperts` replaces a layer's `GptOssExperts`. Its weights are the published `*_blocks` and
`*_scales` tensors (`[experts, out, in / 32, 16]` and `[experts, out, in / 32]`), kept as
buffers. On CUDA the Triton kernels of `moe_kernels.py` multiply by them directly, forward and
backward, decode (a few rows an expert), prefill and training alike, unpacking each routed
expert's tiles in registers. On the CPU (or with the kernels off) the experts are dequantized
`DEQUANTIZE_CHUNK` at a time (gpt-oss-20b's 32 at once) for `grouped_mm`. Either way the bf16
experts never exist whole. The expert weights themselves are frozen (no LoRA on them here).

`load_resident` builds a gpt-oss model from an MXFP4 folder without ever allocating the bf16
experts (42 GB for gpt-oss-20b): everything else is loaded as `loading._load_mxfp4` does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from ..mxfp4 import E8M0_BIAS, FP4_VALUES
from .forward import grouped_experts, kernels_enabled


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`[..., rows, cols/32, 16]` blocks and `[..., rows, cols/32]` scales to `[..., rows, cols]`.

    One lookup per byte (a 256-entry table of value pairs) instead of one per nibble, then one
    multiply by the power-of-two scale: the same values as `mxfp4.dequantize_mxfp4`."""
    table = _pair_table(dtype, blocks.device)
    values = table[blocks.to(torch.int32)]  # [..., cols/32, 16, 2]
    scale = torch.exp2(scales.to(torch.float32) - E8M0_BIAS).to(dtype)
    values = values.flatten(-2) * scale.unsqueeze(-1)
    return values.flatten(-2)


_TABLES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _pair_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (dtype, device)
    if key not in _TABLES:
        fp4 = torch.tensor(FP4_VALUES, dtype=torch.float32)
        byte = torch.arange(256)
        _TABLES[key] = torch.stack((fp4[byte & 0x0F], fp4[byte >> 4]), dim=-1).to(dtype).to(device)
    return _TABLES[key]


RowEnds = Callable[[torch.Tensor], list[int]]
"""The routing's cumulative rows per expert (`offsets`) on the host, read once per routing."""


def read_once() -> RowEnds:
    """A `RowEnds` that copies the offsets to the host on its first call only: the two grouped
    linears of one routing (and their backward, through `ctx`) share that one wait."""
    ends: list[list[int]] = []

    def row_ends(offsets: torch.Tensor) -> list[int]:
        if not ends:
            ends.append(offsets.tolist())
        return ends[0]

    return row_ends


class GroupedMxLinear(torch.autograd.Function):
    """`grouped_mm(x, W^T)` with `W [experts, out, in]` packed; backward to `x` only.

    On CUDA the Triton kernels of `moe_kernels.py` unpack each routed expert's tiles in
    registers (tiles of 16 rows for a few rows an expert, 128 for many) and fit in a CUDA graph.
    Elsewhere the experts are dequantized `DEQUANTIZE_CHUNK` at a time for grouped_mm: never more
    than that many experts in bf16 at once."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        offsets: torch.Tensor,
        blocks: torch.Tensor,
        scales: torch.Tensor,
        row_ends: RowEnds,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """The result in `dtype` (the model's); x in f16 takes the decode kernel's fp8 path."""
        ctx.save_for_backward(offsets, blocks, scales)
        ctx.row_ends = row_ends
        if _kernels(x):
            from .moe_kernels import grouped_linear

            return grouped_linear(x, offsets, blocks=blocks, scales=scales, out_dtype=dtype)
        return grouped_mm_dequantized(x.to(dtype), offsets, blocks, scales, transposed=False, row_ends=row_ends)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        offsets, blocks, scales = ctx.saved_tensors
        if _kernels(grad):
            from .moe_kernels import grouped_linear_t

            return grouped_linear_t(grad, offsets, blocks, scales), None, None, None, None, None
        out = grouped_mm_dequantized(grad, offsets, blocks, scales, transposed=True, row_ends=ctx.row_ends)
        return out, None, None, None, None, None


def _kernels(x: torch.Tensor) -> bool:
    return x.is_cuda and kernels_enabled()


DEQUANTIZE_CHUNK = 32
"""Experts dequantized at a time without the kernels (all 32 of gpt-oss-20b's gate_up: 1.06 GB).
A layer with no more experts than this takes one pass and never waits on the device; with
more, each chunk no row was routed to is skipped, which needs the routing on the host."""


def grouped_mm_dequantized(
    x: torch.Tensor,
    offsets: torch.Tensor,
    blocks: torch.Tensor,
    scales: torch.Tensor,
    transposed: bool,
    row_ends: RowEnds | None = None,
) -> torch.Tensor:
    """Each row of `x` (sorted by expert, `offsets` the cumulative row ends) times its expert's
    `W^T` (or `W` when `transposed`), dequantizing the experts a chunk at a time. With one chunk,
    or under CUDA-graph capture (which cannot wait on the device), every expert is dequantized at
    once and nothing waits on the device. Otherwise a chunk no row was routed to is skipped: the
    row ends are read on the host (`row_ends`, once per routing); nothing else waits on the
    device, since everything a chunk needs is sliced from device tensors."""
    capturing = x.is_cuda and torch.cuda.is_current_stream_capturing()
    if capturing or blocks.shape[0] <= DEQUANTIZE_CHUNK:  # every expert, no need to know the routing
        weight = dequantize(blocks, scales, x.dtype)
        return F.grouped_mm(x, weight if transposed else weight.transpose(-1, -2), offs=offsets)
    ends = (row_ends or read_once())(offsets)
    columns = blocks.shape[2] * 32 if transposed else blocks.shape[1]
    out = x.new_empty((x.shape[0], columns))
    for first in range(0, len(ends), DEQUANTIZE_CHUNK):
        chunk = slice(first, first + DEQUANTIZE_CHUNK)
        low, high = ends[first - 1] if first else 0, ends[chunk][-1]
        if high == low:
            continue
        weight = dequantize(blocks[chunk], scales[chunk], x.dtype)
        offs = (offsets[chunk] - low).to(torch.int32)
        out[low:high] = F.grouped_mm(x[low:high], weight if transposed else weight.transpose(-1, -2), offs=offs)
    return out


def dequantize_routed(
    blocks: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The experts some row was routed to (`offsets`: cumulative row ends per expert), as
    `[R, out, in]`, with the offsets of just those experts: PyTorch only, the benchmark's
    reference for the kernels. Finding them waits on the device."""
    counts = torch.diff(offsets, prepend=offsets.new_zeros(1))
    routed = counts.nonzero().squeeze(1)
    out_features, in_features = blocks.shape[1], blocks.shape[2] * 32
    weight = torch.empty((routed.shape[0], out_features, in_features), dtype=dtype, device=blocks.device)
    for start in range(0, routed.shape[0], DEQUANTIZE_CHUNK):
        part = routed[start : start + DEQUANTIZE_CHUNK]
        weight[start : start + part.shape[0]] = dequantize(blocks[part], scales[part], dtype)
    return weight, offsets[routed]


class MxExperts(nn.Module):
    """Drop-in for `GptOssExperts` (same forward arguments) with packed weights."""

    def __init__(self, config: Any, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        e, h, i = config.num_local_experts, config.hidden_size, config.intermediate_size
        u8 = dict(dtype=torch.uint8, device=device)
        self.register_buffer("gate_up_proj_blocks", torch.empty(e, 2 * i, h // 32, 16, **u8))
        self.register_buffer("gate_up_proj_scales", torch.empty(e, 2 * i, h // 32, **u8))
        self.register_buffer("down_proj_blocks", torch.empty(e, h, i // 32, 16, **u8))
        self.register_buffer("down_proj_scales", torch.empty(e, h, i // 32, **u8))
        self.gate_up_proj_bias = nn.Parameter(torch.empty(e, 2 * i, device=device, dtype=dtype), requires_grad=False)
        self.down_proj_bias = nn.Parameter(torch.empty(e, h, device=device, dtype=dtype), requires_grad=False)
        self.num_experts = e
        self.alpha: float = getattr(config, "swiglu_alpha", 1.702)  # a constant in transformers 5.17
        self.limit: float = config.swiglu_limit

    @property
    def decode_dtype(self) -> torch.dtype:
        """The decode kernels' input rows in f16 where the GPU converts fp8 pairs to f16 in one
        instruction (compute capability 8.9 and up): MXFP4 unpacks in fewer instructions than by
        bf16's byte tables (`moe_kernels._grouped_kernel`). Else the model's dtype. The runner
        casts them (`forward.Dims.experts_input`)."""
        device = self.gate_up_proj_blocks.device
        fp8 = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)
        return torch.float16 if fp8 else self.gate_up_proj_bias.dtype

    def grouped_linears(self) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
        """What `forward.grouped_experts` calls: two grouped linears (x, offsets) -> y, and biases;
        a new pair for each routing."""

        row_ends = read_once()  # both linears run on one routing
        dtype = self.gate_up_proj_bias.dtype  # the model's: the linears' results

        def gate_up(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            return GroupedMxLinear.apply(x, offsets, self.gate_up_proj_blocks, self.gate_up_proj_scales, row_ends, dtype)

        def down(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            return GroupedMxLinear.apply(x, offsets, self.down_proj_blocks, self.down_proj_scales, row_ends, dtype)

        return gate_up, self.gate_up_proj_bias, down, self.down_proj_bias

    def forward(self, hidden: torch.Tensor, router_indices: torch.Tensor, routing_weights: torch.Tensor) -> torch.Tensor:
        return grouped_experts(self, hidden, router_indices, routing_weights, self.num_experts)


def load_resident(folder: Path, config: Any, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    """A gpt-oss model from an MXFP4 folder with `MxExperts` in every layer."""
    config = copy.deepcopy(config)
    del config.quantization_config
    with torch.device("meta"):
        model: PreTrainedModel = AutoModelForCausalLM.from_config(config, dtype=dtype)
    decoder = model.get_decoder()
    for layer in decoder.layers:
        layer.mlp.experts = MxExperts(config, device, dtype)
    model.to_empty(device=device)
    # Non-persistent buffers (the rotary tables) are computed at init, not loaded: rebuild them.
    decoder.rotary_emb = type(decoder.rotary_emb)(config=config).to(device)
    if model.config.tie_word_embeddings:
        model.tie_weights()

    targets = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    missing = {name for name in targets if "rotary_emb" not in name}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt", device=str(device)) as f:
            for name in f.keys():
                if name not in targets:
                    raise KeyError(f"unexpected tensor {name}")
                value = f.get_tensor(name)
                if targets[name].shape != value.shape:
                    raise ValueError(f"{name}: shape {tuple(value.shape)}, model wants {tuple(targets[name].shape)}")
                with torch.no_grad():
                    targets[name].copy_(value)
                missing.discard(name)
    if model.config.tie_word_embeddings:
        missing.discard("lm_head.weight")
    if missing:
        raise KeyError(f"tensors missing from the folder: {sorted(missing)[:5]}")
    return model.eval()
