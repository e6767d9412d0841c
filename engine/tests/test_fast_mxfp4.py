"""MXFP4-resident experts against the plain load (experts dequantized once at load time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import rel_err
from transformers import AutoConfig

from rl2048_engine.fast import mxfp4_experts
from rl2048_engine.fast.attention import FAST_ATTENTION
from rl2048_engine.fast.forward import FAST_EXPERTS, cast_rows
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.fast.lora import fast_lora_forward
from rl2048_engine.fast.mxfp4_experts import MxExperts, dequantize, grouped_mm_dequantized, load_resident
from rl2048_engine.loading import load_model
from rl2048_engine.mxfp4 import dequantize_mxfp4, quantize_mxfp4
from rl2048_engine.params import LoadParams
from rl2048_engine.sampling import SamplingSettings


def test_dequantize_matches_the_reference() -> None:
    blocks, scales = quantize_mxfp4(torch.randn(3, 64, 96) * torch.logspace(-3, 2, 96))
    assert torch.equal(dequantize(blocks, scales, torch.float32), dequantize_mxfp4(blocks, scales, torch.float32))


@pytest.mark.parametrize("chunk", [2, 6])  # three chunks, or one (no routing read on the host)
@pytest.mark.parametrize("transposed", [False, True])
def test_grouped_mm_dequantized_skips_unrouted_chunks_or_takes_one(
    transposed: bool, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mxfp4_experts, "DEQUANTIZE_CHUNK", chunk)
    blocks, scales = quantize_mxfp4(torch.randn(6, 48, 64))  # 6 experts, W [48, 64]
    weight = dequantize(blocks, scales, torch.float32)
    counts = [3, 0, 0, 0, 5, 1]  # the chunk of experts 2-3 has no rows, the first one half
    x = torch.randn(sum(counts), 48 if transposed else 64)
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    reads: list[int] = []

    def row_ends(offs: torch.Tensor) -> list[int]:
        reads.append(1)
        return offs.tolist()

    got = grouped_mm_dequantized(x, offsets, blocks, scales, transposed=transposed, row_ends=row_ends)
    expert = torch.repeat_interleave(torch.arange(6), torch.tensor(counts))
    want = torch.stack([x[i] @ (weight[e] if transposed else weight[e].T) for i, e in enumerate(expert.tolist())])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert reads == ([1] if chunk < 6 else [])


def test_f16_rows_saturate_at_the_f16_range() -> None:
    """`cast_rows` to f16 (the MXFP4 decode kernels' rows) clamps in float32: bf16 rounds 65504,
    f16's largest, up to 65536, which would be inf."""
    x = torch.randn(9, 64).bfloat16() * 1e3
    x[0, 0], x[1, 1] = 1e6, -1e6
    rows = cast_rows(x, torch.float16)
    assert rows.dtype == torch.float16 and rows.isfinite().all()
    assert rows[0, 0] == 65504 and rows[1, 1] == -65504
    assert torch.equal(rows[2:], x[2:].half())
    assert torch.equal(cast_rows(x, torch.bfloat16), x) and cast_rows(x, None) is x


@pytest.mark.parametrize("chunk", [8, 3])  # tiny has 4 experts: one chunk, or two uneven ones
def test_resident_model_matches_the_dequantized_one(
    tiny_mxfp4_folder: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mxfp4_experts, "DEQUANTIZE_CHUNK", chunk)
    plain = load_model(LoadParams(model=str(tiny_mxfp4_folder), dtype="float32", device="cpu")).causal_lm
    config = AutoConfig.from_pretrained(tiny_mxfp4_folder)
    resident = load_resident(tiny_mxfp4_folder, config, torch.device("cpu"), torch.float32)
    assert all(isinstance(layer.mlp.experts, MxExperts) for layer in resident.get_decoder().layers)
    assert not any("experts.gate_up_proj" == n.split(".", 4)[-1] for n, _ in resident.named_parameters())

    ids = torch.randint(0, 2000, (2, 40), generator=torch.Generator().manual_seed(0))
    embeds = [m.get_input_embeddings()(ids).detach().requires_grad_() for m in (plain, resident)]
    outs = [m(inputs_embeds=e).logits for m, e in zip((plain, resident), embeds)]
    assert torch.allclose(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    for out in outs:  # backward through the packed experts to the input
        out.float().logsumexp(-1).sum().backward()
    assert embeds[0].grad is not None and embeds[1].grad is not None
    assert torch.allclose(embeds[1].grad, embeds[0].grad, rtol=1e-4, atol=1e-6)

    settings = SamplingSettings(temperature=0.0)
    rows = ids.tolist()
    greedy = [FastGenerator(m).generate(rows, 1, 8, settings, [], torch.Generator()) for m in (plain, resident)]
    assert [c.ids for c in greedy[1]] == [c.ids for c in greedy[0]]


@pytest.mark.gpu(reason="the Triton kernels run compiled on a GPU")
@pytest.mark.parametrize("row_tiles", [0, 1])
def test_resident_model_on_the_gpu_matches_the_dequantized_one(
    tiny_mxfp4_folder: Path, row_tiles: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On CUDA the packed experts are multiplied by the Triton kernels forward and backward, here
    # with many rows an expert (2 x 64 tokens, the many-row tiles), each program taking one
    # expert's rows or one row tile (`ROW_TILES`): within bf16 rounding of the model whose
    # experts were dequantized at load.
    from rl2048_engine.fast import moe_kernels

    for key in (("mx", "many"), ("mx_t", "many")):
        monkeypatch.setitem(moe_kernels.TILES, key, {**moe_kernels.TILES[key], "ROW_TILES": row_tiles})
    cuda = torch.device("cuda")
    plain = load_model(LoadParams(model=str(tiny_mxfp4_folder), dtype="bfloat16", device="cuda")).causal_lm
    resident = load_resident(tiny_mxfp4_folder, AutoConfig.from_pretrained(tiny_mxfp4_folder), cuda, torch.bfloat16)
    ids = torch.randint(0, 2000, (2, 64), generator=torch.Generator().manual_seed(0)).to(cuda)
    embeds = [m.get_input_embeddings()(ids).detach().float().requires_grad_() for m in (plain, resident)]
    outs = [m(inputs_embeds=e.bfloat16()).logits.float() for m, e in zip((plain, resident), embeds)]
    assert rel_err(outs[1], outs[0]) < 2e-2
    for out in outs:
        out.logsumexp(-1).sum().backward()
    assert embeds[0].grad is not None and embeds[1].grad is not None
    assert rel_err(embeds[1].grad, embeds[0].grad) < 5e-2


def test_load_options_select_the_fast_paths(tiny_mxfp4_folder: Path, tiny_folder: Path) -> None:
    from helpers import ATTENTION_LORA, PROMPTS, make_call

    from rl2048_engine.engine import Engine

    engine = Engine()
    call = make_call(engine)
    load = dict(model=str(tiny_mxfp4_folder), dtype="float32", device="cpu", lora=ATTENTION_LORA)
    call("load", **load, fast=True, experts="mxfp4")
    assert engine.fast_generator is not None
    assert not engine.fast_generator.runner.fold_lora  # MXFP4 mode keeps to its memory budget
    fast = call("generate", prompts=PROMPTS, n=2, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    items = [{"prompt": PROMPTS[c["prompt_index"]], "completion": c["ids"], "advantage": 1.0} for c in fast["completions"]]
    assert call("train_step", items=items, gradient_accumulation_steps=2)["step"] == 1
    call("load", **load)
    plain = call("generate", prompts=PROMPTS, n=2, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    assert [c["ids"] for c in fast["completions"]] == [c["ids"] for c in plain["completions"]]
    call("load", **{**load, "model": str(tiny_folder)}, fast=True)
    assert engine.fast_generator is not None and engine.fast_generator.runner.fold_lora  # bf16 mode folds LoRA
    loaded = engine.require().loaded  # transformers' forward runs our experts, attention and LoRA
    config = loaded.causal_lm.config
    assert config._experts_implementation == FAST_EXPERTS and config._attn_implementation == FAST_ATTENTION
    q_proj = loaded.causal_lm.get_decoder().layers[0].self_attn.q_proj
    assert getattr(q_proj.forward, "__func__", None) is fast_lora_forward
    with pytest.raises(AssertionError, match="needs a folder with MXFP4 experts"):
        call("load", **{**load, "model": str(tiny_folder)}, experts="mxfp4")


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9), reason="needs a GPU that converts fp8"
)
def test_decode_hands_the_kernel_f16_rows_on_the_gpu(tiny_mxfp4_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU that converts fp8 the runner gives the MXFP4 decode kernel f16 rows (its fp8 path):
    the same greedy tokens, and logprobs within bf16 noise, as with bf16 rows (the byte tables).
    The prefill's many rows stay in bf16 either way."""
    from rl2048_engine.fast import moe_kernels

    real, seen = moe_kernels.grouped_linear, []

    def spy(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append((x.shape[0], x.dtype))
        return real(x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(moe_kernels, "grouped_linear", spy)
    config = AutoConfig.from_pretrained(tiny_mxfp4_folder)
    model = load_resident(tiny_mxfp4_folder, config, torch.device("cuda"), torch.bfloat16)
    rows = torch.randint(0, 2000, (2, 40), generator=torch.Generator().manual_seed(0)).tolist()
    outs = []
    for rows_dtype in (torch.float16, torch.bfloat16):
        generator = FastGenerator(model, use_graph=False, compiled=False)
        assert generator.runner.decode_experts_input == torch.float16
        generator.runner.decode_experts_input = rows_dtype
        seen.clear()
        outs.append(generator.generate(rows, 1, 6, SamplingSettings(temperature=0.0), [], torch.Generator()))
        decode_rows = len(rows) * config.num_experts_per_tok  # one token a row, top-k experts each
        assert {dtype for n, dtype in seen if n == decode_rows} == {rows_dtype}
        assert {dtype for n, dtype in seen if n > decode_rows} == {torch.bfloat16}
    assert [c.ids for c in outs[0]] == [c.ids for c in outs[1]]
    for f16, bf16 in zip(outs[0], outs[1]):
        assert torch.allclose(torch.tensor(f16.logprobs), torch.tensor(bf16.logprobs), atol=2e-2)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0), reason="needs a GPU with PDL (sm_90)"
)
def test_decode_with_programmatic_dependent_launch_on_the_gpu(
    tiny_mxfp4_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `pdl.ENABLED` the decode step's kernels (ours, and inductor's where this PyTorch has the
    option; replayed from the token step's graph) start before the kernel ahead of them ends and
    wait for its results: the same tokens and logprobs as without it. (This passed on an H100 on
    2026-12-07 while gpt-oss-20b's shapes gave other tokens: `explore_decode_gap.py --runs`.)"""
    from rl2048_engine.fast import pdl

    config = AutoConfig.from_pretrained(tiny_mxfp4_folder)
    model = load_resident(tiny_mxfp4_folder, config, torch.device("cuda"), torch.bfloat16)
    rows = torch.randint(0, 2000, (3, 30), generator=torch.Generator().manual_seed(0)).tolist()
    real_on, launched = pdl.on, []

    def on(device: torch.device, kernel: str) -> bool:
        launched.append(real_on(device, kernel))
        return launched[-1]

    monkeypatch.setattr(pdl, "on", on)
    outs = []
    for enabled in (False, True):
        monkeypatch.setattr(pdl, "ENABLED", enabled)
        launched.clear()
        generator = FastGenerator(model)
        settings = SamplingSettings(temperature=1.0)
        outs.append(generator.generate(rows, 2, 30, settings, [], torch.Generator(device="cuda").manual_seed(4)))
        assert launched and set(launched) == {enabled}
    assert [c.ids for c in outs[0]] == [c.ids for c in outs[1]]
    for off, on in zip(outs[0], outs[1]):
        assert off.logprobs == pytest.approx(on.logprobs, abs=1e-5)
