"""The fast decoder and generator against the plain path (tiny gpt-oss, float32, CPU).

The CUDA-graph replay itself runs only on a GPU (bench/engine/bench_step.py checks it there);
here the same step runs eagerly.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rl2048_engine.fast.forward import GptOssRunner, KVCache
from rl2048_engine.fast.generation import STOP_SLOTS, FastGenerator
from rl2048_engine.generation import generate
from rl2048_engine.loading import LoadedModel, load_model
from rl2048_engine.logprobs import make_batch, token_logprobs
from rl2048_engine.params import LoadParams
from rl2048_engine.sampling import SamplingSettings

from helpers import ATTENTION_LORA


@pytest.fixture(scope="module")
def loaded(tiny_folder: Path) -> LoadedModel:
    loaded = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu", lora=ATTENTION_LORA))
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero: give the adapters something to do
        for name, param in loaded.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    return loaded


def prompts(lengths: list[int], seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(2000) for _ in range(n)] for n in lengths]


def test_prefill_logits_match_the_transformers_forward(loaded: LoadedModel) -> None:
    # 150 tokens: past the 128-token sliding window, with one row left-padded by 40.
    rows = prompts([150, 110], seed=1)
    runner = GptOssRunner(loaded.causal_lm)
    width, slots = 150, 192
    ids = torch.zeros((2, width), dtype=torch.long)
    pad = torch.tensor([0, 40])
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
    positions = (torch.arange(width).unsqueeze(0) - pad.unsqueeze(1)).clamp(min=0)
    cos, sin = runner.rope_table(slots)
    write = torch.arange(width)
    with torch.no_grad():
        hidden = runner.forward(
            runner.embed(ids),
            cos[positions],
            sin[positions],
            write,
            runner.masks(write, pad, slots),
            KVCache.empty(runner, 2, slots),
        )
        fast = runner.head(hidden).float()
        for i, row in enumerate(rows):
            plain = loaded.model(input_ids=torch.tensor([row])).logits[0].float()
            got = fast[i, width - len(row) :]
            assert torch.linalg.norm(got - plain) / torch.linalg.norm(plain) < 1e-5


def test_greedy_completions_match_the_plain_generator(loaded: LoadedModel) -> None:
    rows = prompts([140, 100, 60], seed=2)
    settings = SamplingSettings(temperature=0.0)
    plain = generate(loaded.model, rows, 2, 24, settings, [], torch.Generator(), loaded.device)
    fast = FastGenerator(loaded.causal_lm).generate(rows, 2, 24, settings, [], torch.Generator())
    assert [c.ids for c in fast] == [c.ids for c in plain]
    assert [c.prompt_index for c in fast] == [c.prompt_index for c in plain]
    for a, b in zip(fast, plain):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_each_distinct_prompt_is_prefilled_once(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = prompts([40, 25], seed=4)
    rows = [a, b, a]  # the product asks for the same prompt in every group
    generator = FastGenerator(loaded.causal_lm)
    runner_forward, prefilled = generator.runner.forward, []

    def forward(hidden: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if hidden.shape[1] > 1:  # the prefill (decode steps take one token a row)
            prefilled.append(hidden.shape[0])
        return runner_forward(hidden, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generator.runner, "forward", forward)
    settings = SamplingSettings(temperature=0.0)
    fast = generator.generate(rows, 2, 12, settings, [], torch.Generator())
    plain = generate(loaded.model, rows, 2, 12, settings, [], torch.Generator(), loaded.device)
    assert prefilled == [2]
    assert [c.prompt_index for c in fast] == [0, 0, 1, 1, 2, 2]
    assert [c.ids for c in fast] == [c.ids for c in plain]
    for x, y in zip(fast, plain):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def test_sampled_logprobs_match_logprobs_and_stops_end_rows(loaded: LoadedModel) -> None:
    rows = prompts([30, 12], seed=3)
    generator = FastGenerator(loaded.causal_lm)
    settings = SamplingSettings(temperature=0.7)
    first = generator.generate(rows, 2, 20, settings, [], torch.Generator().manual_seed(5))
    again = generator.generate(rows, 2, 20, settings, [], torch.Generator().manual_seed(5))
    assert [c.ids for c in again] == [c.ids for c in first]  # the kept cache does not leak

    batch = make_batch([(rows[c.prompt_index], c.ids) for c in first], loaded.device)
    with torch.no_grad():
        scored, _ = token_logprobs(loaded.causal_lm, batch, 0.7)
    for c, row in zip(first, scored.tolist()):
        assert row[: len(c.ids)] == pytest.approx(c.logprobs, abs=1e-4)

    stop = first[0].ids[3]
    stopped = generator.generate(rows, 2, 20, settings, [stop], torch.Generator().manual_seed(5))
    assert stopped[0].finish_reason == "stop" and stopped[0].ids == first[0].ids[: first[0].ids.index(stop) + 1]
    assert all(c.finish_reason == "length" or c.ids[-1] == stop for c in stopped)

    # More stop ids than a state holds (`STOP_SLOTS`): a state with room for them, same stops.
    many = [stop] + [t for t in range(1000, 1000 + STOP_SLOTS) if t not in first[0].ids[:4]]
    again = generator.generate(rows, 2, 20, settings, many, torch.Generator().manual_seed(5))
    assert generator.state is not None and generator.state.stops.shape[0] == 2 * STOP_SLOTS
    assert again[0].ids == stopped[0].ids and again[0].finish_reason == "stop"


def test_the_runner_stacks_q_k_v_in_place_without_copying_them(tiny_folder: Path) -> None:
    # Unfolded, q, k and v are one GEMM over the parameters moved into one tensor: same values,
    # same parameter objects, no second copy; below them each adapter's A (rows padded to 8),
    # zeros in the bias. A second runner finds them stacked and writes A again.
    loaded = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu", lora=ATTENTION_LORA))
    attn = loaded.causal_lm.get_decoder().layers[1].self_attn
    parts = (attn.q_proj, attn.k_proj, attn.v_proj)
    bases = [p.base_layer for p in parts]
    params = [b.weight for b in bases] + [b.bias for b in bases]
    before = [p.detach().clone() for p in params]
    stacked = GptOssRunner(loaded.causal_lm).tensors[1].qkv
    assert [b.weight for b in bases] + [b.bias for b in bases] == params  # the same objects
    assert all(torch.equal(p, want) for p, want in zip(params, before))
    rows = sum(b.weight.shape[0] for b in bases)
    a = torch.cat([p.lora_A["default"].weight for p in parts]).detach()
    assert stacked.sizes == tuple(b.weight.shape[0] for b in bases) and stacked.a_rows == 16  # 3 x rank 4
    assert torch.equal(stacked.weight[:rows], torch.cat(before[:3])) and torch.equal(stacked.bias[:rows], torch.cat(before[3:]))
    assert torch.equal(stacked.weight[rows : rows + 12], a) and not stacked.weight[rows + 12 :].any()
    assert not stacked.bias[rows:].any()
    assert stacked.weight.data_ptr() == bases[0].weight.data_ptr()
    assert bases[2].weight.data_ptr() == stacked.weight[rows - bases[2].weight.shape[0] :].data_ptr()
    with torch.no_grad():
        parts[0].lora_A["default"].weight.add_(1.0)  # as the optimizer changes A in place
    runner = GptOssRunner(loaded.causal_lm)
    again = runner.tensors[1].qkv
    assert again.weight.data_ptr() == stacked.weight.data_ptr() and again.bias.data_ptr() == stacked.bias.data_ptr()
    assert torch.equal(again.weight[rows : rows + 4], a[:4] + 1.0)
    o = runner.tensors[1].o  # o alone, its A below it
    assert o.weight.data_ptr() == attn.o_proj.base_layer.weight.data_ptr() and o.a_rows == 8


def test_folded_lora_projections_give_the_same_logits_and_follow_updates(loaded: LoadedModel) -> None:
    rows = prompts([40, 25], seed=3)
    settings = SamplingSettings(temperature=1.0)
    plain, folded = FastGenerator(loaded.causal_lm), FastGenerator(loaded.causal_lm, fold_lora=True)

    def sample(generator: FastGenerator) -> list:
        return generator.generate(rows, 2, 12, settings, [], torch.Generator().manual_seed(5))

    def same(a: list, b: list) -> None:
        assert [c.ids for c in a] == [c.ids for c in b]
        for x, y in zip(a, b):
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)

    same(sample(plain), sample(folded))
    # A training step changes the adapters in place: the next call folds the new weights.
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if "lora_B" in name:
                param.mul_(-1.5)
    try:
        same(sample(plain), sample(folded))
        assert (
            folded.runner.folded is not None
            and folded.runner.folded[0].qkv_weight.shape[0]
            == (folded.runner.dims.heads + 2 * folded.runner.dims.kv_heads) * folded.runner.dims.head_dim
        )
    finally:
        with torch.no_grad():
            for name, param in loaded.model.named_parameters():
                if "lora_B" in name:
                    param.div_(-1.5)


@pytest.mark.parametrize("fold_lora", [False, True])
def test_compiled_layer_functions_match_the_eager_ones(loaded: LoadedModel, fold_lora: bool) -> None:
    # On CUDA the decode step runs the layer functions through torch.compile (inductor); here
    # inductor's CPU backend compiles the same functions.
    rows = prompts([30, 19], seed=4)
    settings = SamplingSettings(temperature=1.0)

    def sample(compiled: bool) -> list:
        generator = FastGenerator(loaded.causal_lm, fold_lora=fold_lora, compiled=compiled)
        return generator.generate(rows, 2, 10, settings, [], torch.Generator().manual_seed(6))

    eager, compiled = sample(False), sample(True)
    assert [c.ids for c in compiled] == [c.ids for c in eager]
    for a, b in zip(compiled, eager):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


@pytest.mark.gpu(reason="CUDA graphs")
@pytest.mark.parametrize("top_p", [1.0, 0.9], ids=["fused sampler, token graph", "sample_next, decode graph"])
def test_replayed_token_steps_match_the_steps_run_as_they_are(tiny_folder: Path, top_p: float) -> None:
    # On the GPU, the seed's settings (temperature only) take the fused sampler and replay the
    # whole token step; top-p takes `sample_next` between replays of the decode step. Either way
    # the same generator state gives the tokens and logprobs of the same steps run as they are
    # (no graph), and stops end rows in the graph as outside it. (That the logprobs are the
    # scored ones is checked on the CPU, above: on the H200 the decode path and the scoring
    # forward of this tiny float32 model differed by up to 0.048 in a token's logprob.)
    loaded = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cuda", lora=ATTENTION_LORA))
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    rows = prompts([30, 12, 21], seed=3)
    settings = SamplingSettings(temperature=0.7, top_p=top_p)
    replayed, as_they_are = FastGenerator(loaded.causal_lm), FastGenerator(loaded.causal_lm, use_graph=False)

    def sample(generator: FastGenerator, stops: list[int], seed: int = 5) -> list:
        return generator.generate(rows, 2, 40, settings, stops, torch.Generator(device="cuda").manual_seed(seed))

    stops: list[int] = []
    for seed in (5, 6, 6):  # a second call replays the graph captured by the first; the third stops
        got, want = sample(replayed, stops, seed), sample(as_they_are, stops, seed)
        assert [c.ids for c in got] == [c.ids for c in want]
        assert [c.finish_reason for c in got] == [c.finish_reason for c in want]
        for a, b in zip(got, want):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        stops = [got[0].ids[5], got[3].ids[9], 1]  # tokens these rows sample, so that they stop
    state = replayed.state
    assert state is not None and (state.token_graph is not None) == (top_p == 1.0)
    assert (state.decode_graph is not None) == (top_p != 1.0)
    assert any(c.finish_reason == "stop" for c in got), "some row stopped"
