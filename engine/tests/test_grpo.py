"""The GRPO loss on hand-made tensors: aggregation, clipping, two-sided delta, k3 KL."""

from __future__ import annotations

import math

import pytest
import torch

from rl2048_engine.grpo import grpo_loss
from rl2048_engine.params import LossParams

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
ADV = torch.tensor([1.0, -2.0])


def loss_of(logprobs: torch.Tensor, old: torch.Tensor | None = None, ref: torch.Tensor | None = None, **cfg):
    params = LossParams(**{"max_completion_length": 4, **cfg})
    return grpo_loss(logprobs, old, ref, ADV, MASK, torch.zeros_like(MASK), params, 2, batch_token_count=8.0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # ratio 1 everywhere, so every token's loss is -A: row 0 three tokens of -1, row 1 one of +2.
        ("grpo", ((-3 / 3) + (2 / 1)) / 2 / 2),  # mean of per-completion means, / accumulation
        ("bnpo", (-3 + 2) / 4 / 2),  # token mean over the micro-batch, / accumulation
        ("dr_grpo", (-3 + 2) / (2 * 4) / 2),  # / (completions x max length), / accumulation
        ("dapo", (-3 + 2) / 8),  # / tokens of the whole accumulated batch
    ],
)
def test_aggregation(kind: str, expected: float) -> None:
    out = loss_of(torch.zeros(2, 3), type=kind)
    assert out.loss.item() == pytest.approx(expected)
    assert out.token_count == 4


def test_gradient_pushes_logprob_with_the_advantage() -> None:
    logprobs = torch.full((2, 3), -1.0, requires_grad=True)
    loss_of(logprobs, type="bnpo").loss.backward()
    assert logprobs.grad is not None
    assert (logprobs.grad[0] < 0).all()  # descending raises row 0 (A > 0)
    assert logprobs.grad[1, 0] > 0  # and lowers row 1 (A < 0)
    assert (logprobs.grad[1, 1:] == 0).all()  # masked


def test_clipping_stops_the_gradient_and_counts_tokens() -> None:
    old = torch.zeros(2, 3)
    logprobs = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)  # ratios e^0.5, e^-0.5
    out = loss_of(logprobs, old, type="bnpo", epsilon=0.2, epsilon_high=0.28)
    out.loss.backward()
    assert logprobs.grad is not None
    assert logprobs.grad[0, 0] == 0 and logprobs.grad[1, 0] == 0  # both clipped, in the advantage's way
    assert logprobs.grad[0, 1] != 0
    assert out.clip_high == pytest.approx(1 / 4) and out.clip_low == pytest.approx(1 / 4)
    assert out.clip_region == pytest.approx(2 / 4)


def test_two_sided_delta_caps_the_ratio_for_negative_advantages() -> None:
    old = torch.zeros(2, 3)
    logprobs = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # row 1 ratio e^2 = 7.4, A = -2
    plain = loss_of(logprobs, old, type="bnpo", epsilon=0.2).loss.item()
    capped = loss_of(logprobs, old, type="bnpo", epsilon=0.2, delta=1.5).loss.item()
    assert plain == pytest.approx((-3 + 2 * math.exp(2)) / 4 / 2)
    assert capped == pytest.approx((-3 + 2 * 1.5) / 4 / 2)


def test_k3_kl_is_zero_at_the_reference_and_added_with_beta() -> None:
    logprobs = torch.zeros(2, 3)
    same = loss_of(logprobs, ref=logprobs.clone(), beta=0.5)
    assert same.kl == 0.0
    ref = torch.full((2, 3), -0.3)
    kl = math.exp(-0.3) + 0.3 - 1
    out = loss_of(logprobs, ref=ref, beta=0.5, type="bnpo")
    assert out.kl == pytest.approx(kl)
    assert out.loss.item() == pytest.approx((-3 + 2 + 4 * 0.5 * kl) / 4 / 2)
    unused = loss_of(logprobs, ref=ref, beta=0.0, type="bnpo")
    assert unused.kl == pytest.approx(kl) and unused.loss.item() == pytest.approx((-3 + 2) / 4 / 2)
