"""One optimizer step: GRPO (`train_step`) or supervised cross-entropy (`sft_step`).

The items are split into `gradient_accumulation_steps` micro-batches; each runs forward and
backward, then the gradients are clipped to `max_grad_norm` and the optimizer and scheduler
step once. The loss itself is in grpo.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from peft import PeftModel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from .errors import EngineError
from .grpo import GrpoLoss, grpo_loss
from .loading import LoadedModel
from .logprobs import CHUNK_TOKENS, Batch, make_batch, token_logprobs
from .params import GrpoItem, ScoredItem, SftStepParams, TrainStepParams

T = TypeVar("T")


@dataclass
class Trainer:
    """What a step needs besides the model: the optimizer, the schedule and the step count."""

    loaded: LoadedModel
    optimizer: Optimizer | None
    """None for a frozen model."""
    scheduler: LambdaLR | None
    max_grad_norm: float | None
    step: int = 0


def micro_batches(items: Sequence[T], count: int) -> list[Sequence[T]]:
    """Split `items` into at most `count` consecutive, nearly equal micro-batches."""
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


@torch.no_grad()
def reference_logprobs(
    loaded: LoadedModel,
    batch: Batch,
    temperature: float,
    chunk_tokens: int = CHUNK_TOKENS,
    attention_masks: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Logprobs under the reference: the base model (adapters off) or the frozen initial copy
    (`token_logprobs` says what the other arguments do)."""
    if loaded.reference is not None:
        model, reference = loaded.reference, contextlib.nullcontext()
    else:
        model, reference = loaded.causal_lm, adapters_off(loaded)
    with reference:
        return token_logprobs(model, batch, temperature, chunk_tokens=chunk_tokens, attention_masks=attention_masks)[0]


@contextlib.contextmanager
def adapters_off(loaded: LoadedModel) -> Iterator[None]:
    if isinstance(loaded.model, PeftModel):
        with loaded.model.disable_adapter():
            yield
    else:
        yield


class GrpoMetrics:
    """The GRPO loss's metrics over the micro-batches of one step: token-weighted means."""

    def __init__(self) -> None:
        self.tokens: torch.Tensor | float = 0.0  # tensors once a micro-batch is added: read in `report`
        self.sums: dict[str, torch.Tensor | float] = {"kl": 0.0, "entropy": 0.0, "low": 0.0, "high": 0.0, "region": 0.0}

    def add(self, out: GrpoLoss) -> None:
        self.tokens += out.token_count
        for key, value in (
            ("kl", out.kl),
            ("entropy", out.entropy),
            ("low", out.clip_low),
            ("high", out.clip_high),
            ("region", out.clip_region),
        ):
            self.sums[key] += value * out.token_count

    def report(self, loss: float, grad_norm: float, lr: float, step: int) -> dict[str, object]:
        tokens = torch.as_tensor(self.tokens).clamp(min=1.0)
        mean = {key: float(total / tokens) for key, total in self.sums.items()}
        return {
            "loss": loss,
            "kl": mean["kl"],
            "entropy": mean["entropy"],
            "clip_ratio": {"low_mean": mean["low"], "high_mean": mean["high"], "region_mean": mean["region"]},
            "grad_norm": grad_norm,
            "learning_rate": lr,
            "step": step,
        }


def train_step(trainer: Trainer, params: TrainStepParams) -> dict[str, object]:
    _check_trainable(trainer)
    cfg = params.loss
    loaded = trainer.loaded
    keep = [not (cfg.mask_truncated_completions and item.truncated) for item in params.items]
    batch_tokens = float(sum(len(item.completion) for item, k in zip(params.items, keep) if k))

    loss, metrics = 0.0, GrpoMetrics()
    micro = micro_batches(list(zip(params.items, keep)), params.gradient_accumulation_steps)
    loaded.model.train()
    try:
        for chunk in micro:
            items: list[GrpoItem] = [item for item, _ in chunk]
            batch = make_batch([(it.prompt, it.completion) for it in items], loaded.device)
            keep_rows = torch.tensor([float(k) for _, k in chunk], device=loaded.device)
            mask = batch.completion_mask * keep_rows.unsqueeze(1)
            given = given_old_logprobs(items, batch.targets.shape[1], loaded.device)
            advantages = torch.tensor([it.advantage for it in items], device=loaded.device)
            ref = reference_logprobs(loaded, batch, cfg.temperature) if cfg.wants_kl() else None
            logprobs, entropy = token_logprobs(loaded.causal_lm, batch, cfg.temperature, with_entropy=True)
            assert entropy is not None
            out = grpo_loss(
                logprobs=logprobs,
                old_logprobs=_old_logprobs(given, logprobs),
                ref_logprobs=ref,
                advantages=advantages,
                mask=mask,
                entropy=entropy,
                cfg=cfg,
                accumulation_steps=len(micro),
                batch_token_count=batch_tokens,
            )
            out.loss.backward()
            loss += float(out.loss.detach())
            metrics.add(out)
        grad_norm, lr = _optimizer_step(trainer)
    except BaseException:
        trainer.loaded.model.zero_grad(set_to_none=True)  # no half-accumulated gradients left behind
        raise
    finally:
        loaded.model.eval()
    return metrics.report(loss, grad_norm, lr, trainer.step)


def sft_step(trainer: Trainer, params: SftStepParams) -> dict[str, object]:
    """Cross-entropy on the completion tokens, averaged over all tokens of the batch."""
    _check_trainable(trainer)
    loaded = trainer.loaded
    total_tokens = float(sum(len(item.completion) for item in params.items))
    loss_sum = 0.0
    loaded.model.train()
    try:
        for chunk in micro_batches(params.items, params.gradient_accumulation_steps):
            items: Sequence[ScoredItem] = chunk
            batch = make_batch([(it.prompt, it.completion) for it in items], loaded.device)
            logprobs, _ = token_logprobs(loaded.causal_lm, batch)
            loss = -(logprobs * batch.completion_mask).sum() / total_tokens
            loss.backward()
            loss_sum += float(loss.detach())
        grad_norm, lr = _optimizer_step(trainer)
    except BaseException:
        trainer.loaded.model.zero_grad(set_to_none=True)
        raise
    finally:
        loaded.model.eval()
    return {"loss": loss_sum, "grad_norm": grad_norm, "learning_rate": lr, "step": trainer.step}


def _check_trainable(trainer: Trainer) -> tuple[Optimizer, LambdaLR]:
    if trainer.optimizer is None or trainer.scheduler is None:
        raise EngineError("bad_request", "the model is frozen: load it with lora or full_finetune to train")
    return trainer.optimizer, trainer.scheduler


OldLogprobs = tuple[torch.Tensor, torch.Tensor]
"""The sampling logprobs given with a batch's items, `[B, C]`, and where they were given (bool)."""


def given_old_logprobs(items: Sequence[GrpoItem], width: int, device: torch.device) -> OldLogprobs | None:
    """Built on the host and copied once, before the forward pass, so that the step never waits
    on the device for them."""
    if all(it.old_logprobs is None for it in items):
        return None
    values = torch.zeros((len(items), width), dtype=torch.float32)
    given = torch.zeros((len(items), width), dtype=torch.bool)
    for row, it in enumerate(items):
        if it.old_logprobs is not None:
            values[row, : len(it.old_logprobs)] = torch.tensor(it.old_logprobs)
            given[row, : len(it.old_logprobs)] = True
    return values.to(device), given.to(device)


def _old_logprobs(given: OldLogprobs | None, logprobs: torch.Tensor) -> torch.Tensor | None:
    """The sampling logprobs where given; the current (detached) ones elsewhere, as TRL does."""
    if given is None:
        return None
    values, where = given
    return torch.where(where, values, logprobs.detach())


def _optimizer_step(trainer: Trainer) -> tuple[float, float]:
    """Clip, step, schedule; returns the gradient norm before clipping and the LR used."""
    optimizer, scheduler = _check_trainable(trainer)
    params = trainer.loaded.trainable
    max_norm = trainer.max_grad_norm if trainer.max_grad_norm is not None else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    trainer.step += 1
    return grad_norm, lr
