"""The GRPO step with every micro-batch in one forward and one backward.

The plain step (`training.train_step`) runs forward and backward once per micro-batch, so the
model's weights (42 GB for gpt-oss-20b in bf16, all experts hit by a few hundred tokens) are
read 2 x `gradient_accumulation_steps` times, plus once more per micro-batch for the reference.
Here the whole batch goes through the decoder once; the loss is still computed micro-batch by
micro-batch (each keeps its own normalization, as `grpo_loss` defines it) and the parts are
summed before one backward, so the loss, the gradient and the metrics are the plain step's.
Memory grows with the batch: this is for batches that fit (the seed's 8 x 350 tokens do).
The reference forward (adapters off) runs only when the loss needs it (`beta != 0`) or the
caller asks for `kl` (`loss.compute_kl`), as in TRL.

Nothing between the first kernel of the forward and the end of the backward waits on the device
(what the host knows, it copies before the forward; the metrics are read after the backward), so
the host queues the backward while the GPU is still in the forward.
"""

from __future__ import annotations

import torch

from ..grpo import grpo_loss
from ..logprobs import make_batch, token_logprobs
from ..params import TrainStepParams
from ..training import GrpoMetrics, Trainer, _check_trainable, _old_logprobs, _optimizer_step, given_old_logprobs, micro_batches, reference_logprobs

HEAD_CHUNK_TOKENS = 256
"""Completion positions per LM-head chunk: float32 logits of 201k tokens are 0.8 GB per 1024
positions, and log-softmax and its backward hold a few such; 256 keeps the step's peak low
(MXFP4 mode fits in 16 GB) at a few more, still large, matmuls."""


def train_step_fused(trainer: Trainer, params: TrainStepParams) -> dict[str, object]:
    _check_trainable(trainer)
    cfg = params.loss
    loaded = trainer.loaded
    items = params.items
    keep = [not (cfg.mask_truncated_completions and item.truncated) for item in items]
    batch_tokens = float(sum(len(item.completion) for item, k in zip(items, keep) if k))
    rows = list(range(len(items)))
    micro = micro_batches(rows, params.gradient_accumulation_steps)

    loaded.model.train()
    try:
        batch = make_batch([(it.prompt, it.completion) for it in items], loaded.device)
        mask = batch.completion_mask * torch.tensor([float(k) for k in keep], device=loaded.device).unsqueeze(1)
        given = given_old_logprobs(items, batch.targets.shape[1], loaded.device)
        advantages = torch.tensor([it.advantage for it in items], device=loaded.device)
        ref = reference_logprobs(loaded, batch, cfg.temperature) if cfg.wants_kl() else None
        logprobs, entropy = token_logprobs(
            loaded.causal_lm, batch, cfg.temperature, with_entropy=True, chunk_tokens=HEAD_CHUNK_TOKENS
        )
        assert entropy is not None
        old = _old_logprobs(given, logprobs)

        total = torch.zeros((), device=loaded.device)
        metrics = GrpoMetrics()
        for part in micro:
            rows_of = slice(part[0], part[-1] + 1)
            out = grpo_loss(
                logprobs=logprobs[rows_of],
                old_logprobs=None if old is None else old[rows_of],
                ref_logprobs=None if ref is None else ref[rows_of],
                advantages=advantages[rows_of],
                mask=mask[rows_of],
                entropy=entropy[rows_of],
                cfg=cfg,
                accumulation_steps=len(micro),
                batch_token_count=batch_tokens,
            )
            total = total + out.loss
            metrics.add(out)
        total.backward()
        grad_norm, lr = _optimizer_step(trainer)
    except BaseException:
        trainer.optimizer.zero_grad(set_to_none=True)
        raise
    finally:
        loaded.model.eval()
    return metrics.report(float(total.detach()), grad_norm, lr, trainer.step)
