"""Generation: seeded and repeatable, consistent with `logprobs`, stops, padding, filters."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import ATTENTION_LORA, PROMPTS, Call, make_call

from rl2048_engine.engine import Engine
from rl2048_engine.sampling import SamplingSettings, _filter, sample_next


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "fast"])
def call(tiny_folder: Path, request: pytest.FixtureRequest) -> Call:
    """The engine as the plain path runs it, and in fast mode (the fast generator; the logprobs
    pass with each prompt once for its completions)."""
    call = make_call(Engine())
    call("load", model=str(tiny_folder), dtype="float32", device="cpu", seed=1, lora=ATTENTION_LORA, fast=request.param)
    return call


def generate(call: Call, **kw: object) -> list[dict]:
    params = {"prompts": PROMPTS, "n": 2, "max_new_tokens": 8, "stop_token_ids": [], **kw}
    return call("generate", **params)["completions"]


def test_same_seed_same_completions(call: Call) -> None:
    first = generate(call, seed=7)
    assert generate(call, seed=7) == first
    assert generate(call, seed=8) != first
    assert [c["prompt_index"] for c in first] == [0, 0, 1, 1]
    assert all(len(c["ids"]) == 8 and c["finish_reason"] == "length" for c in first)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_logprobs(call: Call, temperature: float) -> None:
    completions = generate(call, seed=3, temperature=temperature, max_new_tokens=12)
    items = [{"prompt": PROMPTS[c["prompt_index"]], "completion": c["ids"]} for c in completions]
    scored = call("logprobs", items=items, temperature=temperature, reference=True)
    for c, policy, reference in zip(completions, scored["policy"], scored["reference"]):
        assert policy == pytest.approx(c["logprobs"], abs=1e-4)
        assert reference == pytest.approx(policy, abs=1e-6)  # LoRA B starts at zero


def test_a_stop_token_ends_the_completion_and_is_kept(call: Call) -> None:
    first = generate(call, seed=5)
    stop = first[0]["ids"][2]
    stopped = generate(call, seed=5, stop_token_ids=[stop])
    ids = stopped[0]["ids"]
    assert stopped[0]["finish_reason"] == "stop"
    assert ids[-1] == stop and stop not in ids[:-1]
    assert ids == first[0]["ids"][: len(ids)]


def test_left_padding_does_not_change_greedy_completions(call: Call) -> None:
    long_prompt = [(7 * i) % 1900 + 1 for i in range(140)]  # past the 128-token sliding window
    greedy = {"max_new_tokens": 6, "temperature": 0.0, "stop_token_ids": []}
    alone = call("generate", prompts=[PROMPTS[1]], **greedy)["completions"][0]
    long_alone = call("generate", prompts=[long_prompt], **greedy)["completions"][0]
    batched = call("generate", prompts=[long_prompt, PROMPTS[1]], **greedy)["completions"]
    assert batched[1]["ids"] == alone["ids"]
    assert batched[0]["ids"] == long_alone["ids"]
    assert batched[1]["logprobs"] == pytest.approx(alone["logprobs"], abs=1e-4)


def test_filters_keep_the_expected_tokens() -> None:
    logprobs = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda **kw: torch.isfinite(_filter(logprobs, SamplingSettings(**kw)))[0].tolist()
    assert kept(top_k=2) == [True, True, False, False]
    assert kept(top_p=0.7) == [True, True, False, False]  # 0.5 < 0.7, 0.8 reaches it
    assert kept(top_p=0.5) == [True, False, False, False]
    assert kept(min_p=0.2) == [True, True, True, False]  # 0.15 >= 0.2 * 0.5
    assert kept() == [True] * 4
    assert math.isclose(float(torch.logsumexp(logprobs, -1)), 0.0, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (SamplingSettings(), [0.5, 0.3, 0.15, 0.05]),
        (SamplingSettings(temperature=2.0), [0.3790, 0.2936, 0.2076, 0.1198]),  # p^(1/2), renormalized
        (SamplingSettings(top_k=2), [0.625, 0.375, 0.0, 0.0]),
        (SamplingSettings(min_p=0.2), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]),
    ],
)
def test_sampling_draws_from_the_filtered_renormalized_distribution(
    settings: SamplingSettings, expected: list[float]
) -> None:
    draws = 40_000
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(draws, -1) + 3.0  # any shift
    ids, logprobs = sample_next(logits, settings, torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=4).double() / draws
    for f, p in zip(freq.tolist(), expected):
        assert abs(f - p) <= 5 * math.sqrt(max(p * (1 - p), 1e-12) / draws) + 1e-3
    tempered = torch.log_softmax(logits[0] / settings.temperature, -1)
    assert torch.allclose(logprobs, tempered[ids])  # under the tempered distribution, before the filters
