"""MXFP4 packing as gpt-oss ships its MoE experts (OCP Microscaling, FP4 e2m1 elements).

A weight `w [..., rows, cols]` is cut along its last axis into blocks of 32 values. Each block
stores one shared power-of-two scale (e8m0: a biased exponent byte, value 2**(byte - 127)) and
32 FP4 e2m1 codes packed two per byte, the even element in the low nibble:

    blocks  uint8 [..., rows, cols / 32, 16]
    scales  uint8 [..., rows, cols / 32]

The checkpoint stores gpt-oss experts as `[experts, out, in]` blocks (e.g. `gate_up_proj_blocks`
`[32, 5760, 90, 16]`), while transformers' `GptOssExperts` parameters are `[experts, in, out]`:
`expert_param_to_mxfp4` / `mxfp4_to_expert_param` do that transpose. Dequantization matches
`transformers.integrations.mxfp4.convert_moe_packed_tensors` bit for bit (see the tests).

Quantization picks each block's scale as the smallest power of two with `amax / scale <= 6`
(6 is the largest e2m1 value, so nothing clips; triton_kernels' default "round up" mode) and
rounds each element to the nearest e2m1 value, ties to the even code.
"""

from __future__ import annotations

import torch

BLOCK = 32
"""Values per block (one shared scale)."""

E8M0_BIAS = 127

FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
"""The e2m1 value of each 4-bit code: bit 3 is the sign, bits 0-2 the magnitude."""

_MAGNITUDES = FP4_VALUES[:8]


def quantize_mxfp4(w: torch.Tensor, chunk_rows: int = 1 << 14) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack `w [..., rows, cols]` (cols a multiple of 32) into `(blocks, scales)`; see module doc.

    Works `chunk_rows` rows at a time so the float32 temporaries stay small (gpt-oss-20b experts).
    """
    if w.shape[-1] % BLOCK != 0:
        raise ValueError(f"last dimension {w.shape[-1]} is not a multiple of {BLOCK}")
    *lead, cols = w.shape
    flat = w.detach().reshape(-1, cols)
    blocks = torch.empty(flat.shape[0], cols // BLOCK, BLOCK // 2, dtype=torch.uint8, device=w.device)
    scales = torch.empty(flat.shape[0], cols // BLOCK, dtype=torch.uint8, device=w.device)
    for start in range(0, flat.shape[0], chunk_rows):
        rows = slice(start, start + chunk_rows)
        blocks[rows], scales[rows] = _quantize_rows(flat[rows])
    return blocks.reshape(*lead, cols // BLOCK, BLOCK // 2), scales.reshape(*lead, cols // BLOCK)


def _quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = w.float().reshape(w.shape[0], -1, BLOCK)

    # Shared exponent: smallest e with amax / 2**e <= 6, i.e. ceil(log2(amax / 6)).
    amax = x.abs().amax(dim=-1, keepdim=True)
    exponent = torch.ceil(torch.log2(amax / _MAGNITUDES[-1]))
    exponent = torch.where(amax > 0, exponent, torch.zeros_like(exponent))
    exponent = exponent.clamp(-E8M0_BIAS, E8M0_BIAS)
    scaled = x / torch.exp2(exponent)

    # Nearest magnitude code, ties to the even code: e2m1 steps are 0.5 below 2, 1 up to 4 and 2
    # up to 6, and torch.round rounds halves to even, which lands on the even code in each range.
    magnitude = scaled.abs().clamp_(max=_MAGNITUDES[-1])
    code = torch.where(
        magnitude < 2,
        torch.round(magnitude * 2),
        torch.where(magnitude < 4, torch.round(magnitude) + 2, torch.round(magnitude / 2) + 4),
    ).to(torch.uint8)
    code |= ((scaled < 0) & (code > 0)).to(torch.uint8) << 3  # sign bit; no negative zero

    blocks = code[..., 0::2] | (code[..., 1::2] << 4)
    scales = (exponent.squeeze(-1) + E8M0_BIAS).to(torch.uint8)
    return blocks, scales


def dequantize_mxfp4(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Unpack `(blocks, scales)` back to `[..., rows, cols]` in `dtype`."""
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BLOCK // 2:
        raise ValueError(f"blocks {tuple(blocks.shape)} and scales {tuple(scales.shape)} do not pair up")
    lut = torch.tensor(FP4_VALUES, dtype=dtype, device=blocks.device)
    blocks = blocks.to(torch.uint8)
    low = lut[(blocks & 0x0F).long()]
    high = lut[(blocks >> 4).long()]
    values = torch.stack((low, high), dim=-1).flatten(-2)  # [..., rows, cols/32, 32]
    exponent = scales.to(torch.int32) - E8M0_BIAS
    values = torch.ldexp(values, exponent.unsqueeze(-1).to(values.device)).to(dtype)
    return values.flatten(-2)


def expert_param_to_mxfp4(param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A `GptOssExperts` weight `[experts, in, out]` to the published `[experts, out, in/32, 16]` pair."""
    return quantize_mxfp4(param.transpose(-1, -2))


def mxfp4_to_expert_param(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The published pair back to a `GptOssExperts` weight `[experts, in, out]`."""
    return dequantize_mxfp4(blocks, scales, dtype).transpose(-1, -2).contiguous()
