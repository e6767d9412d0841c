"""Temperature sampling in two Triton kernels, with nothing read on the host (a CUDA graph holds it).

`sampling.sample_next` takes about 22 kernels a token over the 201k-token vocabulary (a
log-softmax with one block a row, exp, multinomial's exponential draws, divide, argmax, gather):
100 us of GPU time a token for the seed's 8 rows on an H200, 10% of a decode step's work outside
the experts. Here, for plain temperature sampling (no top-k, top-p or min-p: the seed's
settings), by the Gumbel-max trick: the token argmax(y + g), y = logits / T, g = -log(-log u)
with u uniform, is drawn from softmax(y), as multinomial draws it. One kernel takes a chunk of a
row a program (its max, its sum of exp(y - max), its best y + g and where); the second combines
a row's chunks into the token and its logprob y[token] - logsumexp(y), the tempered logprob the
trainer recomputes. Greedy (temperature 0) is the same with g = 0 and T = 1, as in `sample_next`.

The random numbers come from Philox (`tl.rand`) keyed by `seed + step` (two int64 tensors on the
device), at offset `row * V + column`: a generate call draws its seed from its torch.Generator,
so the same generator state gives the same tokens, replayed or not. Runs on CUDA, or on the CPU
under `TRITON_INTERPRET=1` (the tests check it that way).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..sampling import SamplingSettings

CHUNK = 8192
"""Vocabulary entries a program of the first kernel takes (25 a row for gpt-oss's 201 088)."""


def applies(settings: SamplingSettings) -> bool:
    """Whether these settings are plain temperature sampling (or greedy), which `sample` draws."""
    return settings.top_k == 0 and settings.top_p >= 1.0 and settings.min_p <= 0.0


@triton.jit
def _chunk_kernel(
    logits_ptr, inv_t_ptr, noise_ptr, seed_ptr, step_ptr, part_ptr, index_ptr, V, CHUNKS, BLOCK: tl.constexpr
):
    """Per (row, chunk): max y, sum exp(y - max), max y + noise * g and its column (`part_ptr`
    [B, CHUNKS, 3] float32, `index_ptr` [B, CHUNKS] int32)."""
    row, chunk = tl.program_id(0), tl.program_id(1)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    ok = cols < V
    y = tl.load(logits_ptr + row.to(tl.int64) * V + cols, mask=ok, other=float("-inf")).to(tl.float32)
    y = y * tl.load(inv_t_ptr)
    top = tl.max(y, axis=0)
    total = tl.sum(tl.where(ok, tl.exp(y - top), 0.0), axis=0)
    u = tl.rand(tl.load(seed_ptr) + tl.load(step_ptr), row * V + cols)
    gumbel = -tl.log(-tl.log(tl.maximum(u, 1e-20)))
    z = tl.where(ok, y + tl.load(noise_ptr) * gumbel, float("-inf"))
    best = tl.max(z, axis=0)
    where = tl.argmax(z, axis=0)
    part = part_ptr + (row * CHUNKS + chunk) * 3
    tl.store(part, top)
    tl.store(part + 1, total)
    tl.store(part + 2, best)
    tl.store(index_ptr + row * CHUNKS + chunk, chunk * BLOCK + where)


@triton.jit
def _row_kernel(logits_ptr, inv_t_ptr, part_ptr, index_ptr, ids_ptr, logprobs_ptr, V, CHUNKS, BLOCK: tl.constexpr):
    """Per row: the chunks' results to the token (`ids_ptr`, int64) and its logprob."""
    row = tl.program_id(0)
    c = tl.arange(0, BLOCK)
    ok = c < CHUNKS
    part = part_ptr + (row * CHUNKS + c) * 3
    top = tl.load(part, mask=ok, other=float("-inf"))
    total = tl.load(part + 1, mask=ok, other=0.0)
    best = tl.load(part + 2, mask=ok, other=float("-inf"))
    m = tl.max(top, axis=0)
    lse = m + tl.log(tl.sum(total * tl.exp(top - m), axis=0))
    token = tl.load(index_ptr + row * CHUNKS + tl.argmax(best, axis=0))
    y = tl.load(logits_ptr + row.to(tl.int64) * V + token).to(tl.float32) * tl.load(inv_t_ptr)
    tl.store(ids_ptr + row, token.to(tl.int64))
    tl.store(logprobs_ptr + row, y - lse)


def sample(
    logits: torch.Tensor,
    inv_temperature: torch.Tensor,
    noise: torch.Tensor,
    seed: torch.Tensor,
    step: torch.Tensor,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `[B]` and their logprobs `[B]` from `logits [B, V]`. The others are one-element
    device tensors: 1 / temperature (1 for greedy), the noise's weight (1, or 0 for greedy), and
    the int64 seed and step that key the random numbers."""
    rows, vocab = logits.shape
    chunks = triton.cdiv(vocab, chunk)
    logits = logits.contiguous()
    part = torch.empty((rows, chunks, 3), dtype=torch.float32, device=logits.device)
    index = torch.empty((rows, chunks), dtype=torch.int32, device=logits.device)
    ids = torch.empty(rows, dtype=torch.long, device=logits.device)
    logprobs = torch.empty(rows, dtype=torch.float32, device=logits.device)
    _chunk_kernel[(rows, chunks)](logits, inv_temperature, noise, seed, step, part, index, vocab, chunks, BLOCK=chunk)
    _row_kernel[(rows,)](
        logits, inv_temperature, part, index, ids, logprobs, vocab, chunks, BLOCK=max(16, triton.next_power_of_2(chunks))
    )
    return ids, logprobs
