"""MXFP4 packing: the layout transformers' gpt-oss loader expects, and round trips."""

import torch
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

from rl2048_engine.mxfp4 import (
    FP4_VALUES,
    dequantize_mxfp4,
    expert_param_to_mxfp4,
    mxfp4_to_expert_param,
    quantize_mxfp4,
)


def test_dequantize_matches_transformers_loader() -> None:
    torch.manual_seed(0)
    blocks = torch.randint(0, 256, (3, 40, 4, 16), dtype=torch.uint8)
    scales = torch.randint(110, 140, (3, 40, 4), dtype=torch.uint8)
    ours = mxfp4_to_expert_param(blocks, scales, torch.bfloat16)
    theirs = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)
    assert ours.shape == theirs.shape == (3, 128, 40)
    assert torch.equal(ours, theirs)


def test_low_nibble_holds_the_even_element() -> None:
    blocks = torch.zeros(1, 1, 16, dtype=torch.uint8)
    blocks[0, 0, 0] = 0x72  # low nibble 2 (+1.0) first, high nibble 7 (+6.0) second
    scales = torch.full((1, 1), 127, dtype=torch.uint8)  # 2**0
    values = dequantize_mxfp4(blocks, scales, torch.float32)
    assert values[0, :3].tolist() == [1.0, 6.0, 0.0]


def test_every_fp4_value_round_trips_exactly_at_any_scale() -> None:
    codes = torch.tensor(FP4_VALUES, dtype=torch.float32).repeat(2)  # one block of 32
    for exponent in (-10, 0, 5):
        w = codes * 2.0**exponent
        blocks, scales = quantize_mxfp4(w.unsqueeze(0))
        assert scales.item() == 127 + exponent
        assert torch.equal(dequantize_mxfp4(blocks, scales, torch.float32)[0], w)


def test_quantization_error_is_within_half_a_step() -> None:
    torch.manual_seed(1)
    w = torch.randn(2, 16, 96, dtype=torch.bfloat16) * 0.02
    blocks, scales = quantize_mxfp4(w)
    assert blocks.shape == (2, 16, 3, 16) and blocks.dtype == torch.uint8
    assert scales.shape == (2, 16, 3) and scales.dtype == torch.uint8
    back = dequantize_mxfp4(blocks, scales, torch.float32)
    # e2m1 steps are at most 2 (between 4 and 6) in units of the block scale.
    step = torch.exp2(scales.float() - 127).repeat_interleave(32, dim=-1)
    assert ((back - w.float()).abs() <= step * 1.0 + 1e-12).all()
    # Nothing clips: each block's largest magnitude is kept within a quarter of itself.
    blockwise = w.float().reshape(2, 16, 3, 32).abs().amax(-1)
    back_max = back.reshape(2, 16, 3, 32).abs().amax(-1)
    assert ((back_max - blockwise).abs() <= blockwise * 0.25).all()


def test_ties_round_to_the_even_code() -> None:
    # 0.25 lies between codes 0 (0.0) and 1 (0.5); 2.5 between 4 (2.0) and 5 (3.0); 5 between 6 and 7.
    w = torch.zeros(32)
    w[:4] = torch.tensor([0.25, 2.5, 5.0, 6.0])
    blocks, scales = quantize_mxfp4(w.unsqueeze(0))
    assert scales.item() == 127
    assert dequantize_mxfp4(blocks, scales, torch.float32)[0, :4].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_expert_param_round_trip_is_idempotent() -> None:
    torch.manual_seed(2)
    param = torch.randn(2, 64, 32, dtype=torch.bfloat16)  # [experts, in, out]
    blocks, scales = expert_param_to_mxfp4(param)
    assert blocks.shape == (2, 32, 2, 16)
    once = mxfp4_to_expert_param(blocks, scales)
    again = mxfp4_to_expert_param(*expert_param_to_mxfp4(once))
    assert torch.equal(once, again)


def test_chunked_quantization_equals_whole() -> None:
    torch.manual_seed(3)
    w = torch.randn(5, 7, 64)
    whole = quantize_mxfp4(w, chunk_rows=1 << 16)
    chunked = quantize_mxfp4(w, chunk_rows=3)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
