"""The GRPO step with every micro-batch in one forward and one backward; on CUDA, replayed from a graph.

The plain step (`training.train_step`) runs forward and backward once per micro-batch, so the
model's weights (42 GB for gpt-oss-20b in bf16, all experts hit by a few hundred tokens) are
read 2 x `gradient_accumulation_steps` times, plus once more per micro-batch for the reference.
Here the whole batch goes through the decoder once; the loss is still computed micro-batch by
micro-batch (each keeps its own normalization, as `grpo_loss` defines it) and the parts are
summed before one backward, so the loss, the gradient and the metrics are the plain step's.
Memory grows with the batch: this is for batches that fit (the seed's 8 x 350 tokens do).
The reference forward (adapters off) runs only when the loss needs it (`beta != 0`) or the
caller asks for `kl` (`loss.compute_kl`), as in TRL.

GRPO samples several completions of each prompt: with the fused attention (`fast.attention`) the
batch holds each distinct prompt once and its completions attend to that copy
(`make_batch(share_prompts=True)`), so the decoder runs fewer tokens for the same loss.

Nothing between the first kernel of the forward and the end of the backward waits on the device
(what the host knows, it copies before the forward; the metrics are read after the backward), so
the host queues the backward while the GPU is still in the forward.

Even so, for gpt-oss-20b the host takes longer to launch the update's ten thousand kernels
(forward, checkpointed recompute, backward) than the GPU takes to run them. Given a
`graphs.CudaGraphs`, the update (the reference forward, the forward, the loss and the backward)
is captured in a CUDA graph per batch shape and replayed: the batch is padded to multiples of
`GRAPH_PADDING` tokens so that shapes repeat (the padding is masked out of the loss), and the
gradients land in the same tensors at every replay; clipping and the optimizer run outside the
graph. `completion_logprobs` does the same for the scoring forward of the engine's `logprobs`.

On CUDA the engine also compiles the decoder layers (`compile_layers`): inductor fuses each
layer's norms, rotary embeddings, attention sinks, residual adds, router and LoRA sums, forward
and backward, into fewer kernels; the routed experts stay outside the compiled code
(`forward.grouped_experts`: Triton kernels or grouped GEMMs under autograd functions of their
own). The seed's update with `kl`, MXFP4 mode on an H100: 0.426 -> 0.371 s, reserved memory 13.71
-> 13.74 GiB; its first call takes 56 s instead of 8 to compile (bench/RESULTS.md). Compiling the
LM-head chunks' log-softmax too saved 4 ms more for 33 s more of compiling: left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from ..grpo import grpo_loss
from ..loading import LoadedModel
from ..logprobs import Batch, make_batch, token_logprobs
from ..params import LossParams, TrainStepParams
from ..training import (
    GrpoMetrics,
    OldLogprobs,
    Trainer,
    _check_trainable,
    _old_logprobs,
    _optimizer_step,
    given_old_logprobs,
    micro_batches,
    reference_logprobs,
)
from .attention import Masks, attention_masks, mask_tensors, shares_prompts
from .graphs import CudaGraphs

HEAD_CHUNK_TOKENS = 256
"""Completion positions per LM-head chunk: float32 logits of 201k tokens are 0.8 GB per 1024
positions, and log-softmax and its backward hold a few such; 256 keeps the step's peak low
(MXFP4 mode fits in 16 GB) at a few more, still large, matmuls."""
GRAPH_PADDING = 16
"""With CUDA graphs, batch widths and completion lengths are padded to multiples of this."""


def compile_layers(causal_lm: PreTrainedModel, enabled: bool = True) -> None:
    """Run each transformers decoder layer of `causal_lm` through `torch.compile` (dynamic shapes:
    one compilation serves every batch shape, and the layers share it), or, not `enabled`, as
    transformers wrote it again."""
    # One compilation per kind of layer (sliding or full attention), grad mode and adapter state
    # (the reference forward runs without), per model: more than torch's default limit of 8 can
    # hold once the benchmark's two models have run, past which the layers would run uncompiled.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for layer in causal_lm.get_decoder().layers:
        layer.__dict__.pop("forward", None)  # the class's forward again (compiled once at most)
        if enabled:
            layer.forward = torch.compile(layer.forward, dynamic=True)


@dataclass
class UpdateInputs:
    """What the forward, the loss and the backward read, all on the device (a graph's inputs)."""

    batch: Batch
    attention_masks: Masks
    mask: torch.Tensor  # [B, C] the completion tokens that count (truncated ones may not)
    old: OldLogprobs | None
    advantages: torch.Tensor  # [B]

    def tensors(self) -> list[torch.Tensor]:
        return [*self.batch.tensors(), *mask_tensors(self.attention_masks), self.mask, self.advantages, *(self.old or ())]


def train_step_fused(trainer: Trainer, params: TrainStepParams, graphs: CudaGraphs | None = None) -> dict[str, object]:
    _check_trainable(trainer)
    cfg = params.loss
    loaded = trainer.loaded
    items = params.items
    micro = [(part[0], part[-1] + 1) for part in micro_batches(range(len(items)), params.gradient_accumulation_steps)]

    loaded.model.train()
    try:
        pad_to = GRAPH_PADDING if graphs is not None else 1
        batch = make_batch([(it.prompt, it.completion) for it in items], loaded.device, pad_to, shares_prompts(loaded))
        keep = [0.0 if cfg.mask_truncated_completions and it.truncated else 1.0 for it in items]
        inputs = UpdateInputs(
            batch=batch,
            attention_masks=attention_masks(loaded.causal_lm, batch),
            mask=batch.completion_mask * torch.tensor(keep, device=loaded.device).unsqueeze(1),
            old=given_old_logprobs(items, batch.targets.shape[1], loaded.device),
            advantages=torch.tensor([it.advantage for it in items], device=loaded.device),
        )

        def update(inputs: UpdateInputs) -> tuple[torch.Tensor, GrpoMetrics]:
            return forward_backward(trainer, inputs, cfg, micro)

        if graphs is None:
            total, metrics = update(inputs)
        else:
            settings = (tuple(micro), cfg.model_dump_json())  # (given old logprobs add two inputs)
            total, metrics = graphs.run("the update", settings, update, inputs, lambda: _gradients_in_place(trainer, graphs))
        grad_norm, lr = _optimizer_step(trainer)
    except BaseException:
        trainer.optimizer.zero_grad(set_to_none=True)
        raise
    finally:
        loaded.model.eval()
    return metrics.report(float(total.detach()), grad_norm, lr, trainer.step)


def forward_backward(
    trainer: Trainer, inputs: UpdateInputs, cfg: LossParams, micro: list[tuple[int, int]]
) -> tuple[torch.Tensor, GrpoMetrics]:
    """The loss of every micro-batch (`micro`: their rows) summed, and its backward."""
    ref = None
    if cfg.wants_kl():
        ref = reference_logprobs(trainer.loaded, inputs.batch, cfg.temperature, HEAD_CHUNK_TOKENS, inputs.attention_masks)
    logprobs, entropy = token_logprobs(
        trainer.loaded.causal_lm,
        inputs.batch,
        cfg.temperature,
        with_entropy=True,
        chunk_tokens=HEAD_CHUNK_TOKENS,
        attention_masks=inputs.attention_masks,
    )
    assert entropy is not None
    old = _old_logprobs(inputs.old, logprobs)
    batch_tokens = inputs.mask.sum()

    total = torch.zeros((), device=logprobs.device)
    metrics = GrpoMetrics()
    for start, end in micro:
        out = grpo_loss(
            logprobs=logprobs[start:end],
            old_logprobs=None if old is None else old[start:end],
            ref_logprobs=None if ref is None else ref[start:end],
            advantages=inputs.advantages[start:end],
            mask=inputs.mask[start:end],
            entropy=entropy[start:end],
            cfg=cfg,
            accumulation_steps=len(micro),
            batch_token_count=batch_tokens,
        )
        total = total + out.loss
        metrics.add(out)
    total.backward()
    return total, metrics


def _gradients_in_place(trainer: Trainer, graphs: CudaGraphs) -> None:
    """Every trainable parameter's `.grad` set to a static tensor (kept on `graphs`), zeroed: the
    backward adds into it, in place, captured or replayed (the optimizer step drops `.grad`)."""
    params = trainer.loaded.trainable
    grads = graphs.buffers.get("gradients")
    if grads is None:  # made once: the captured backward adds into these tensors at every replay
        grads = graphs.buffers["gradients"] = [torch.zeros_like(p) for p in params]
    for p, grad in zip(params, grads, strict=True):
        p.grad = grad
    torch._foreach_zero_(grads)


@dataclass
class ScoringInputs:
    """What the logprobs pass reads, on the device (a graph's inputs)."""

    batch: Batch
    attention_masks: Masks

    def tensors(self) -> list[torch.Tensor]:
        return [*self.batch.tensors(), *mask_tensors(self.attention_masks)]


@torch.no_grad()
def completion_logprobs(
    loaded: LoadedModel, pairs: list[tuple[list[int], list[int]]], temperature: float, reference: bool, graphs: CudaGraphs | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The completions' logprobs `[B, C]` under the policy (and the reference with `reference`);
    with `graphs`, replayed from a CUDA graph per batch shape (columns past a completion's end
    hold padding: cut each row to its length)."""
    batch = make_batch(pairs, loaded.device, GRAPH_PADDING if graphs is not None else 1, shares_prompts(loaded))
    inputs = ScoringInputs(batch, attention_masks(loaded.causal_lm, batch))

    def score(inputs: ScoringInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        policy, _ = token_logprobs(loaded.causal_lm, inputs.batch, temperature, attention_masks=inputs.attention_masks)
        if not reference:
            return policy, None
        return policy, reference_logprobs(loaded, inputs.batch, temperature, attention_masks=inputs.attention_masks)

    if graphs is None:
        return score(inputs)
    return graphs.run("the logprobs pass", (temperature, reference), score, inputs)
