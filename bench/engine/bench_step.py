"""Issue 7: the seed's GRPO step on gpt-oss-20b, the plain way and our way, in one run.

    PYTHONPATH=engine python bench/engine/bench_step.py [--work /tmp/bench7] [--preset 20b|tiny] [--tune] [--no-row-tiles] [--skip-bf16]

The step: 4 prompts of 150 tokens x 2 completions, generation forced to the full 200 new
tokens (no stop ids), logprobs of the 8 completions, one GRPO update (bnpo, LoRA r4 on the
attention projections, gradient accumulation 4, AdamW). Both ways run on the same loaded
weights (`init_model --preset 20b --mxfp4`, random weights, experts dequantized to bf16):

- plain: `PeftModel.generate` (transformers' loop and dynamic cache, sampling), logprobs and
  loss from the full `[B, L, 201k]` logits, forward + backward once per micro-batch;
- ours: `fast.generation.FastGenerator` (static cache, the layer functions compiled by
  torch.compile and the decode step captured in a CUDA graph, the Triton routed-expert kernel in
  decode, grouped GEMMs in prefill, each distinct prompt prefilled once, LoRA folded into one
  q/k/v GEMM), `fast.training.completion_logprobs` (LM head at completion positions only,
  chunked) and `fast.training.train_step_fused` (one forward and backward for the whole batch,
  no reference forward at beta 0), both with each prompt once for its two completions
  (`make_batch`, `share_prompts`), each timed as it runs, then replayed from a CUDA graph as the engine runs
  them on a GPU (and the update once more with `compute_kl`, as the seed preset runs it), all with our
  experts forward, fused attention with sinks and bf16 LoRA projections (`use_fast_experts`,
  `use_fast_attention`, `use_fast_lora`, as the engine's fast mode); the same generate with
  grouped GEMMs in decode too (no Triton), and with LoRA not folded (each adapter's x @ A.T
  from the projections' GEMM, its @ B.T added: as MXFP4 mode runs it), for the share of each;
- ours in MXFP4 mode: experts packed (`load_resident`); decode, prefill and training multiply
  by them with the Triton kernels without dequantizing (tiles of 16 rows for decode, 128 for
  many rows); embeddings offloaded to CPU memory, activation checkpointing.

Before timing, the Triton kernels are checked on the GPU at gpt-oss-20b's shapes (the expert
products against grouped_mm, dense and MXFP4, forward and the MXFP4 backward; dequantization;
decode attention and routing against their PyTorch code); a kernel that fails its check is
turned off (`set_kernels(False)`) and the run goes on without it, saying so.

Timing: each of our phases runs once first (compilation, graph capture; recorded as its first
call), then `REPEATS` times; the median is reported, with every run. The plain way is timed once after a warm-up.
Memory: each row has the peak of allocated tensors (`peak_gib`) and of what the caching
allocator held (`reserved_gib`: cached blocks and CUDA graphs' pools too).

Checks printed with the timings: our sampling logprobs against the plain full-logits logprobs
of the same completions, and the gradient norm of our update against the plain update from
the same weights, and against ours with PEFT's float32 LoRA in place of `use_fast_lora`, and
ours (logprobs and gradient norm) against ours with every row whole (`set_shared_prompts`). The
floor comes from bandwidth and matmul rate measured here (see RESULTS.md).
Writes bench_step.json into --out (default: $OUT when set, else the current folder).

`--skip-bf16` leaves out our bf16 phase, which compiles for minutes on a fresh machine: then the
plain update runs on the plain way's completions, and the MXFP4 logprobs are checked against the
plain way's.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl2048_engine import use_expandable_segments

use_expandable_segments()  # as the engine does, before torch starts CUDA

import torch  # noqa: E402
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import AutoConfig

from rl2048_engine.fast import moe_kernels
from rl2048_engine.fast import training as fast_training
from rl2048_engine.fast.attention import shares_prompts, use_fast_attention
from rl2048_engine.fast.lora import use_fast_lora
from rl2048_engine.fast.forward import GptOssRunner, KVCache, kernels_enabled, set_kernels, use_fast_experts
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.fast.mxfp4_experts import dequantize_routed, load_resident
from rl2048_engine.fast.graphs import CudaGraphs
from rl2048_engine.fast.training import compile_layers, completion_logprobs, train_step_fused
from rl2048_engine.grpo import grpo_loss
from rl2048_engine.init_model import init_model
from rl2048_engine.loading import LoadedModel, _enable_checkpointing, load_model
from rl2048_engine.logprobs import make_batch, token_logprobs
from rl2048_engine.offload import offload_embeddings
from rl2048_engine.optim import make_optimizer, make_scheduler
from rl2048_engine.params import LoadParams, LossParams, OptimParams, TrainStepParams
from rl2048_engine.sampling import SamplingSettings
from rl2048_engine.training import Trainer
from timing import median_us, rel_err  # bench/engine/timing.py

PROMPTS, N, PROMPT_LEN, NEW_TOKENS, ACCUM = 4, 2, 150, 200, 4
LORA = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
LOSS = LossParams(type="bnpo", epsilon=0.2, epsilon_high=0.28, delta=1.5, beta=0.0)
GIB = 1024**3
GPU = torch.cuda.is_available()


def set_row_tiles(on: bool) -> None:
    """The many-row MXFP4 kernels take one row tile a program (`ROW_TILES`, their default), or
    one expert's rows (as before 2026-12-07)."""
    for key in (("mx", "many"), ("mx_t", "many")):
        moe_kernels.TILES[key] = {**moe_kernels.TILES[key], "ROW_TILES": int(on)}


def set_shared_prompts(on: bool) -> None:
    """Our update and logprobs pass hold each distinct prompt once (the engine's way), or every
    row whole, prompt + completion (as before the sixth session of 2026-12-07)."""
    fast_training.shares_prompts = shares_prompts if on else lambda loaded: False


def alloc_conf() -> str:
    """PyTorch's allocator settings for this run (`PYTORCH_ALLOC_CONF` first, as PyTorch reads them)."""
    return os.environ.get("PYTORCH_ALLOC_CONF") or os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")


def tiles() -> dict[str, dict[str, int]]:
    """The expert kernels' launch settings this run used (`moe_kernels.TILES`)."""
    return {f"{kind}/{rows}": tile for (kind, rows), tile in moe_kernels.TILES.items()}


def seed_prompts(preset: str = "20b") -> list[list[int]]:
    """The step's `PROMPTS` prompts of `PROMPT_LEN` random token ids (seeded) in the preset's vocabulary."""
    vocab = 1000 if preset == "tiny" else 199_998
    rng = random.Random(0)
    return [[rng.randrange(vocab) for _ in range(PROMPT_LEN)] for _ in range(PROMPTS)]


def step_params(pairs: list[tuple[list[int], list[int]]], old_logprobs: list[list[float]]) -> TrainStepParams:
    """The seed step's update on these completions: advantages +1 and -1 in turn, sampling logprobs as old."""
    items = [
        {"prompt": p, "completion": c, "advantage": 1.0 if j % 2 == 0 else -1.0, "old_logprobs": lp}
        for j, ((p, c), lp) in enumerate(zip(pairs, old_logprobs))
    ]
    return TrainStepParams(items=items, loss=LOSS, gradient_accumulation_steps=ACCUM)  # type: ignore[arg-type]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run `fn`; return its result, seconds, and peak GPU GiB during it."""
    if GPU:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fn()
    if GPU:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / GIB if GPU else 0.0
    return result, time.perf_counter() - start, peak


def reserved() -> float:
    """The most GPU memory the caching allocator held since `timed` reset the count, GiB: the
    tensors' peak plus cached blocks and CUDA graphs' pools, what a smaller GPU would need."""
    return round(torch.cuda.max_memory_reserved() / GIB, 2) if GPU else 0.0


REPEATS = 3
"""Timed runs of each of our phases after its first call; the median is reported (and every run)."""


def timed_runs(fn: Callable[[], Any], before: Callable[[], None] = lambda: None) -> tuple[Any, float, float, list]:
    """`REPEATS` timed calls of `fn` (`before` each, untimed): the last result, the median seconds,
    the highest peak and every run's seconds."""
    runs = []
    for _ in range(REPEATS):
        before()
        runs.append(timed(fn))
    seconds = sorted(r[1] for r in runs)
    return runs[-1][0], seconds[len(seconds) // 2], max(r[2] for r in runs), [round(r[1], 3) for r in runs]


def timed_train(
    trainer: Trainer, params: TrainStepParams, record: Callable[..., None], before: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Our update as it runs, then replayed from a CUDA graph (`CudaGraphs`, as the engine runs
    it on a GPU: its first call runs as it is, the second captures); `before` each timed call.
    Last, on a GPU, the update as the seed preset runs it, reporting `kl` (`compute_kl`: a
    reference forward, adapters off, in the same graph)."""
    metrics, seconds, peak = timed(lambda: train_step_fused(trainer, params))
    record("train (first call)", seconds, peak, grad_norm=round(metrics["grad_norm"], 5))
    metrics, seconds, peak, runs = timed_runs(lambda: train_step_fused(trainer, params), before)
    record("train (no CUDA graph)", seconds, peak, grad_norm=round(metrics["grad_norm"], 5), runs=runs)
    if not GPU:
        record("train", seconds, peak, grad_norm=round(metrics["grad_norm"], 5), runs=runs)
        return metrics
    graphs = CudaGraphs()
    for call in ("first call", "second call: capture"):
        before()
        metrics, seconds, peak = timed(lambda: train_step_fused(trainer, params, graphs))
        record(f"train (CUDA graph, {call})", seconds, peak, grad_norm=round(metrics["grad_norm"], 5))
    metrics, seconds, peak, runs = timed_runs(lambda: train_step_fused(trainer, params, graphs), before)
    record("train", seconds, peak, grad_norm=round(metrics["grad_norm"], 5), runs=runs, graphs=len(graphs.graphs))
    with_kl = params.model_copy(update={"loss": params.loss.model_copy(update={"compute_kl": True})})
    for _ in range(2):  # first call, capture
        before()
        train_step_fused(trainer, with_kl, graphs)
    kl_metrics, seconds, peak, runs = timed_runs(lambda: train_step_fused(trainer, with_kl, graphs), before)
    record("train (compute_kl, as the seed preset)", seconds, peak, kl=kl_metrics["kl"], runs=runs)
    return metrics


def timed_logprobs(loaded: LoadedModel, pairs: list[tuple[list[int], list[int]]], record: Callable[..., None]) -> torch.Tensor:
    """Our logprobs pass (`completion_logprobs`, as the engine's `logprobs` runs it) as it runs,
    then replayed from a CUDA graph on a GPU; the logprobs `[B, C]` (cut to the longest)."""
    longest = max(len(c) for _, c in pairs)

    def score(graphs: CudaGraphs | None) -> torch.Tensor:
        return completion_logprobs(loaded, pairs, 1.0, False, graphs)[0][:, :longest]

    _, seconds, peak = timed(lambda: score(None))
    record("logprobs (first call: compiles)", seconds, peak)
    logprobs, seconds, peak, runs = timed_runs(lambda: score(None))
    record("logprobs (no CUDA graph)" if GPU else "logprobs", seconds, peak, runs=runs)
    if not GPU:
        return logprobs
    graphs = CudaGraphs()
    first, seconds, peak = timed(lambda: score(graphs).clone())
    record("logprobs (CUDA graph, first call)", seconds, peak)
    _, seconds, peak = timed(lambda: score(graphs))
    record("logprobs (CUDA graph, second call: capture)", seconds, peak)
    replayed, seconds, peak, runs = timed_runs(lambda: score(graphs).clone())
    # Replayed against the first call of the same padded batch (the same kernels): equal.
    record("logprobs", seconds, peak, runs=runs, max_abs_vs_first_call=float((replayed - first).abs().max()))
    return replayed


def fast_forward(loaded: LoadedModel, fast: bool) -> None:
    """transformers' forward (logprobs, training) with our experts, attention and LoRA, as the
    engine's fast mode runs it, or with transformers' and PEFT's own (grouped_mm experts, eager
    attention, float32 LoRA)."""
    use_fast_lora(loaded.model, fast)
    compile_layers(loaded.causal_lm, fast and loaded.device.type == "cuda")
    if fast:
        use_fast_experts(loaded.causal_lm)
        use_fast_attention(loaded.causal_lm)
    else:
        loaded.causal_lm.set_experts_implementation("grouped_mm")
        loaded.causal_lm.set_attn_implementation("eager")


# --- the plain way --------------------------------------------------------------------------


def plain_generate(loaded: LoadedModel, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    rows = torch.tensor([p for p in prompts for _ in range(N)], device=loaded.device)
    out = loaded.model.generate(
        input_ids=rows,
        attention_mask=torch.ones_like(rows),
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=0,
    )
    return out[:, rows.shape[1] :].tolist()


def plain_logprobs(loaded: LoadedModel, pairs: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Full logits, full log-softmax, gather: `[B, C]` (all rows have the same lengths here)."""
    ids = torch.tensor([p + c for p, c in pairs], device=loaded.device)
    prompt_len = len(pairs[0][0])
    logits = loaded.model(input_ids=ids).logits[:, prompt_len - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)


def plain_train(trainer: Trainer, params: TrainStepParams) -> float:
    """Forward + backward per micro-batch on the full logits, then one AdamW step; grad norm."""
    loaded = trainer.loaded
    items = params.items
    size = -(-len(items) // ACCUM)
    tokens = float(sum(len(it.completion) for it in items))
    loaded.model.train()
    for start in range(0, len(items), size):
        part = items[start : start + size]
        logprobs = plain_logprobs(loaded, [(it.prompt, it.completion) for it in part])
        old = torch.tensor([it.old_logprobs for it in part], device=loaded.device)
        out = grpo_loss(
            logprobs=logprobs,
            old_logprobs=old,
            ref_logprobs=None,
            advantages=torch.tensor([it.advantage for it in part], device=loaded.device),
            mask=torch.ones_like(logprobs),
            entropy=torch.zeros_like(logprobs),
            cfg=params.loss,
            accumulation_steps=ACCUM,
            batch_token_count=tokens,
        )
        out.loss.backward()
    loaded.model.eval()
    norm = float(torch.nn.utils.clip_grad_norm_(loaded.trainable, 1.0))
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return norm


# --- the floor ------------------------------------------------------------------------------


def measure_ceilings() -> dict[str, float]:
    """Device-to-device copy bandwidth (read + write) and bf16 matmul rate, medians of 10."""
    if not GPU:
        return {"bandwidth_tb_s": 0.0, "matmul_tflop_s": 0.0}
    src = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16)  # 2 GiB
    dst = torch.empty_like(src)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)

    def median_ms(fn: Callable[[], Any]) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(10):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        return sorted(times)[5]

    copy_ms = median_ms(lambda: dst.copy_(src))
    mm_ms = median_ms(lambda: a @ b)
    del src, dst, a, b
    torch.cuda.empty_cache()
    return {"bandwidth_tb_s": 2 * (1 << 31) / copy_ms / 1e9, "matmul_tflop_s": 2 * 8192**3 / mm_ms / 1e9}


def floor(loaded: LoadedModel, ceilings: dict[str, float], expert_bytes_per_param: float = 2.0) -> dict[str, float]:
    """Seconds no implementation beats: decode reads the non-expert weights and the routed
    experts once per step; the update does ~6 x active params x tokens of matmul work."""
    cfg = loaded.causal_lm.config
    expert_params = sum(p.numel() for n, p in loaded.causal_lm.named_parameters() if ".experts." in n)
    dense_params = sum(p.numel() for n, p in loaded.causal_lm.named_parameters() if ".experts." not in n)
    embed_params = cfg.vocab_size * cfg.hidden_size
    e, k, rows = cfg.num_local_experts, cfg.num_experts_per_tok, PROMPTS * N
    routed = e * (1 - (1 - k / e) ** rows)  # expected distinct experts per layer for 8 tokens
    step_bytes = (dense_params - embed_params) * 2 + expert_params / e * routed * expert_bytes_per_param
    active = dense_params - embed_params + expert_params / e * k
    train_tokens = rows * (PROMPT_LEN + NEW_TOKENS)
    out = {"routed_experts": routed, "decode_gb_per_step": step_bytes / 1e9}
    if ceilings["bandwidth_tb_s"] > 0:
        out["generate_s"] = NEW_TOKENS * step_bytes / (ceilings["bandwidth_tb_s"] * 1e12)
        out["train_s"] = 6 * active * train_tokens / (ceilings["matmul_tflop_s"] * 1e12)
    return out


# --- kernel checks ----------------------------------------------------------------------------


def routing(pairs: int, experts: int, seed: int) -> torch.Tensor:
    """Cumulative row ends per expert for `pairs` rows routed at random (some experts get none)."""
    ids = torch.randint(0, experts, (pairs,), generator=torch.Generator().manual_seed(seed))
    return torch.bincount(ids, minlength=experts).cumsum(0).to(torch.int32).cuda()


@torch.no_grad()
def check_dense_kernel(loaded: LoadedModel, checks: dict[str, Any]) -> bool:
    """The dense decode kernel vs grouped_mm on layer 0's experts, 32 routed rows (8 tokens x 4)."""
    from rl2048_engine.fast.moe_kernels import grouped_linear

    experts = loaded.causal_lm.get_decoder().layers[0].mlp.experts
    try:
        for name, w in (("gate_up", experts.gate_up_proj), ("down", experts.down_proj)):
            x = torch.randn(32, w.shape[1], device="cuda", dtype=w.dtype)
            offs = routing(32, w.shape[0], 0)
            checks[f"kernel_dense_{name}_rel_err"] = rel_err(
                grouped_linear(x, offs, weight=w), F.grouped_mm(x, w, offs=offs)
            )
            checks[f"kernel_dense_{name}_us"] = median_us(lambda: grouped_linear(x, offs, weight=w))
            checks[f"grouped_mm_{name}_us"] = median_us(lambda: F.grouped_mm(x, w, offs=offs))
        ok = checks["kernel_dense_gate_up_rel_err"] < 1e-2 and checks["kernel_dense_down_rel_err"] < 1e-2
        ok = check_decode_kernels(loaded, checks) and ok
    except Exception as err:  # noqa: BLE001 - a kernel that does not build is reported, not fatal
        checks["kernel_dense_error"] = repr(err)[:500]
        ok = False
    checks["kernel_dense_used"] = ok
    return ok


def check_decode_kernels(loaded: LoadedModel, checks: dict[str, Any]) -> bool:
    """The decode attention kernel vs its PyTorch path (as `forward.attention` computes it): 8 rows,
    a 384-slot cache, the last 100 slots unwritten, a 128-slot window, the layer-0 sinks; and the
    decode routing kernel vs `top_k` and `route` on 8 tokens' random logits."""
    from rl2048_engine.fast.decode_attention import decode_attention

    config, attn = loaded.causal_lm.config, loaded.causal_lm.get_decoder().layers[0].self_attn
    kv, dim, slots = config.num_key_value_heads, config.head_dim, 384
    groups = config.num_attention_heads // kv
    q = torch.randn(8, kv, groups, dim, device="cuda", dtype=torch.bfloat16)
    keys, values = (torch.randn(8, kv, slots, dim, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    j = torch.arange(slots, device="cuda")
    mask = torch.where((j < 284) & (j >= 284 - 128), 0.0, float("-inf")).expand(8, -1).contiguous()

    def reference() -> torch.Tensor:
        scores = torch.matmul(q, keys.transpose(-1, -2)).float() * attn.scaling + mask.view(8, 1, 1, -1)
        sinks = attn.sinks.float().view(1, kv, groups, 1).expand(8, -1, -1, 1)
        probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1].to(values.dtype)
        return torch.matmul(probs, values)

    kernel = lambda: decode_attention(q, keys, values, mask, attn.sinks, attn.scaling)  # noqa: E731
    checks["kernel_attention_rel_err"] = rel_err(kernel(), reference())
    checks["kernel_attention_us"] = median_us(kernel)
    checks["torch_attention_us"] = median_us(reference)
    ok = checks["kernel_attention_rel_err"] < 2e-2
    from rl2048_engine.fast.decode_routing import route_top_k
    from rl2048_engine.fast.forward import Routing, route, top_k

    logits = torch.randn(8, config.num_local_experts, device="cuda", dtype=torch.bfloat16)
    top, chosen = top_k(logits, config.num_experts_per_tok)
    want = route(chosen, torch.softmax(top, dim=-1, dtype=top.dtype), config.num_local_experts)
    got = Routing(*route_top_k(logits, config.num_experts_per_tok))
    same = all(torch.equal(getattr(got, f), getattr(want, f)) for f in ("token", "expert", "offsets", "inverse"))
    checks["kernel_routing_same_pairs"] = same
    checks["kernel_routing_weight_rel_err"] = rel_err(got.weight, want.weight)
    return ok and same and checks["kernel_routing_weight_rel_err"] < 1e-2


def check_mx_kernels(causal_lm: Any, checks: dict[str, Any]) -> bool:
    """The MXFP4 kernels (forward, decode- and train-shaped; backward) vs dequantize + grouped_mm."""
    from rl2048_engine.fast.moe_kernels import dequantize_experts, grouped_linear, grouped_linear_t
    from rl2048_engine.fast.mxfp4_experts import dequantize

    experts = causal_lm.get_decoder().layers[0].mlp.experts
    try:
        errs = []
        for name in ("gate_up", "down"):
            blocks, scales = getattr(experts, f"{name}_proj_blocks"), getattr(experts, f"{name}_proj_scales")
            chosen = torch.tensor([5, 0, 31], device="cuda")
            want = dequantize(blocks[chosen], scales[chosen], torch.bfloat16)
            errs.append(rel_err(dequantize_experts(blocks, scales, chosen, torch.bfloat16), want))
            checks[f"kernel_dequantize_{name}_rel_err"] = errs[-1]
            every = torch.arange(blocks.shape[0], device="cuda")
            checks[f"kernel_dequantize_{name}_all_us"] = median_us(
                lambda: dequantize_experts(blocks, scales, every, torch.bfloat16)
            )
            checks[f"torch_dequantize_{name}_all_us"] = median_us(lambda: dequantize(blocks, scales, torch.bfloat16), 5)
            k = blocks.shape[2] * 32
            for rows in (32, 4096):
                x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
                offs = routing(rows, blocks.shape[0], rows)
                with torch.no_grad():
                    weight, routed_offs = dequantize_routed(blocks, scales, offs, x.dtype)
                    want = F.grouped_mm(x, weight.transpose(-1, -2), offs=routed_offs)
                    errs.append(rel_err(grouped_linear(x, offs, blocks=blocks, scales=scales), want))
                    checks[f"kernel_mx_{name}_{rows}_rel_err"] = errs[-1]
                    errs.append(rel_err(grouped_linear(x.half(), offs, blocks=blocks, scales=scales, out_dtype=x.dtype), want))
                    checks[f"kernel_mx_f16_{name}_{rows}_rel_err"] = errs[-1]
                    dy = torch.randn(rows, blocks.shape[1], device="cuda", dtype=torch.bfloat16)
                    errs.append(
                        rel_err(grouped_linear_t(dy, offs, blocks, scales), F.grouped_mm(dy, weight, offs=routed_offs))
                    )
                    checks[f"kernel_mx_t_{name}_{rows}_rel_err"] = errs[-1]
                    if rows == 32:

                        def dequantized() -> torch.Tensor:
                            w, o = dequantize_routed(blocks, scales, offs, x.dtype)
                            return F.grouped_mm(x, w.transpose(-1, -2), offs=o)

                        checks[f"kernel_mx_{name}_32_us"] = median_us(
                            lambda: grouped_linear(x, offs, blocks=blocks, scales=scales)
                        )
                        x16 = x.half()
                        checks[f"kernel_mx_f16_{name}_32_us"] = median_us(
                            lambda: grouped_linear(x16, offs, blocks=blocks, scales=scales, out_dtype=x.dtype)
                        )
                        checks[f"dequantize_routed_grouped_mm_{name}_32_us"] = median_us(dequantized)
                    del weight
        ok = max(errs) < 1e-2
    except Exception as err:  # noqa: BLE001
        checks["kernel_mx_error"] = repr(err)[:500]
        ok = False
    checks["kernel_mx_used"] = ok
    return ok


# --- the run --------------------------------------------------------------------------------


def bf16_phase(
    loaded: LoadedModel,
    trainer: Trainer,
    optimizer: torch.optim.Optimizer,
    prompts: list[list[int]],
    checks: dict[str, Any],
    record: Callable[..., None],
) -> tuple[list[tuple[list[int], list[int]]], torch.Tensor]:
    """Our way on the bf16 model, each phase against the plain way, and the plain update on our
    completions (from the same weights and optimizer state as ours); returns our completions and
    their logprobs."""
    total = PROMPTS * N * NEW_TOKENS

    def record_ours(phase: str, seconds: float, peak: float, **extra: Any) -> None:
        record("ours", phase, seconds, peak, **extra)

    # Our way (the first generate call captures the decode graph). First without the Triton
    # decode kernel (grouped_mm experts, as before it), then with it when it passed its check.
    settings = SamplingSettings(temperature=1.0)
    use_kernels = kernels_enabled()
    set_kernels(False)
    no_kernel = FastGenerator(loaded.causal_lm, fold_lora=True)
    gen = torch.Generator(device=loaded.device).manual_seed(0)
    timed(lambda: no_kernel.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    _, seconds, peak = timed(lambda: no_kernel.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    record_ours("generate (grouped_mm decode, no Triton)", seconds, peak, tokens_per_s=round(total / seconds, 1))
    del no_kernel
    set_kernels(use_kernels)
    unfolded = FastGenerator(loaded.causal_lm)  # LoRA not folded: its x @ A.T in the GEMM, as MXFP4 mode runs it
    timed(lambda: unfolded.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    _, seconds, peak = timed(lambda: unfolded.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    record_ours("generate (LoRA not folded)", seconds, peak, tokens_per_s=round(total / seconds, 1))
    del unfolded
    fast = FastGenerator(loaded.causal_lm, fold_lora=True)
    gen = torch.Generator(device=loaded.device).manual_seed(0)
    _, seconds, peak = timed(lambda: fast.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    record_ours("generate (first call: graph capture)", seconds, peak)
    completions, seconds, peak, runs = timed_runs(lambda: fast.generate(prompts, N, NEW_TOKENS, settings, [], gen))
    record_ours("generate", seconds, peak, tokens_per_s=round(total / seconds, 1), runs=runs)
    ours_pairs = [(prompts[c.prompt_index], c.ids) for c in completions]
    fast_forward(loaded, True)  # as the engine does in fast mode
    ours_lp = timed_logprobs(loaded, ours_pairs, record_ours)
    fast_forward(loaded, False)  # transformers' own, for the plain way

    # Checks: our sampling logprobs and our logprobs against the plain full-logits ones.
    with torch.no_grad():
        reference = plain_logprobs(loaded, ours_pairs)
    sampled = torch.tensor([c.logprobs for c in completions], device=loaded.device)
    checks["sampling_vs_plain_max_abs"] = float((sampled - reference).abs().max())
    checks["sampling_vs_plain_mean_abs"] = float((sampled - reference).abs().mean())
    checks["logprobs_vs_plain_max_abs"] = float((ours_lp - reference).abs().max())
    with torch.no_grad():
        prefill = fast_prefill_logprobs(loaded, ours_pairs)
        alone = torch.cat([plain_logprobs(loaded, [pair]) for pair in ours_pairs])
    # The fast decoder on whole sequences at once, and bf16 noise: the plain forward, row by row.
    checks["fast_prefill_vs_plain_mean_abs"] = float((prefill - reference).abs().mean())
    checks["plain_batch1_vs_batched_mean_abs"] = float((alone - reference).abs().mean())

    # Train: plain, then ours from the same weights and optimizer state.
    train_params = step_params(ours_pairs, sampled.tolist())
    start_weights = {k: v.clone() for k, v in get_peft_model_state_dict(loaded.model).items()}
    start_optim = optimizer.state_dict()
    plain_norm, seconds, peak = timed(lambda: plain_train(trainer, train_params))
    record("plain", "train", seconds, peak, grad_norm=round(plain_norm, 5))
    fast_forward(loaded, True)

    def restart() -> None:  # every run of ours from the weights and optimizer state the plain one had
        set_peft_model_state_dict(loaded.model, start_weights)
        optimizer.load_state_dict(start_optim)

    restart()
    metrics = timed_train(trainer, train_params, record_ours, restart)
    checks["grad_norm_rel_diff"] = abs(metrics["grad_norm"] - plain_norm) / plain_norm
    use_fast_lora(loaded.model, False)  # the same update with PEFT's float32 LoRA: what ours changes alone
    restart()
    peft_norm = train_step_fused(trainer, train_params)["grad_norm"]
    checks["grad_norm_fast_lora_vs_peft_rel_diff"] = abs(metrics["grad_norm"] - peft_norm) / peft_norm
    use_fast_lora(loaded.model)  # and with every row whole: what sharing the prompts changes alone
    set_shared_prompts(False)
    restart()
    whole_lp = completion_logprobs(loaded, ours_pairs, 1.0, False, None)[0][:, : ours_lp.shape[1]]
    whole_norm = train_step_fused(trainer, train_params)["grad_norm"]
    set_shared_prompts(True)
    checks["grad_norm_shared_vs_whole_rows_rel_diff"] = abs(metrics["grad_norm"] - whole_norm) / whole_norm
    checks["logprobs_shared_vs_whole_rows_max_abs"] = float((ours_lp - whole_lp).abs().max())
    checks["logprobs_shared_vs_whole_rows_mean_abs"] = float((ours_lp - whole_lp).abs().mean())
    print(json.dumps({"checks (bf16 phase)": checks}), flush=True)  # in case the run is cut off later

    return ours_pairs, ours_lp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench7"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--preset", default="20b", help="tiny: a CPU dry run of the script")
    parser.add_argument("--tune", action="store_true", help="pick the kernels' tiles first (tune_kernels.py)")
    parser.add_argument("--no-row-tiles", action="store_true", help="one expert's rows a program in the many-row kernels")
    parser.add_argument(
        "--skip-bf16",
        action="store_true",
        help="leave out our bf16 phase: the plain way and MXFP4 mode only (it compiles for minutes on a fresh machine)",
    )
    args = parser.parse_args()
    if args.no_row_tiles:
        set_row_tiles(False)
    rows: list[dict[str, Any]] = []
    tuned = None
    if args.tune and GPU:
        from tune_kernels import tune

        tuned = tune()
        print(json.dumps({"tuned": tuned}), flush=True)

    def record(way: str, phase: str, seconds: float, peak: float, **extra: Any) -> None:
        row = {"way": way, "phase": phase, "seconds": round(seconds, 3), "peak_gib": round(peak, 2), "reserved_gib": reserved(), **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)

    folder = args.work / f"gpt-oss-{args.preset}-mxfp4"
    if not folder.exists():
        _, seconds, _ = timed(lambda: init_model(folder, args.preset, mxfp4=True))
        record("setup", "init_model", seconds, 0.0)
    ceilings = measure_ceilings()
    optim = OptimParams(lr=5e-5)
    params = LoadParams(model=str(folder), dtype="bfloat16", seed=0, lora=LORA, optim=optim)  # type: ignore[arg-type]
    loaded, seconds, peak = timed(lambda: load_model(params))
    record("setup", "load bf16 (experts dequantized), LoRA r4", seconds, peak)
    optimizer, _ = make_optimizer(loaded.trainable, optim, loaded.device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, optim), 1.0)
    checks: dict[str, Any] = {"tuned": tuned} if tuned else {}
    set_kernels(GPU and check_dense_kernel(loaded, checks))

    prompts = seed_prompts(args.preset)
    total = PROMPTS * N * NEW_TOKENS

    # Plain way.
    torch.manual_seed(0)
    timed(lambda: plain_generate(loaded, prompts, 4))  # warm-up
    plain_ids, seconds, peak = timed(lambda: plain_generate(loaded, prompts, NEW_TOKENS))
    record("plain", "generate", seconds, peak, tokens_per_s=round(total / seconds, 1))
    pairs = [(prompts[i // N], ids) for i, ids in enumerate(plain_ids)]
    with torch.no_grad():
        plain_lp, seconds, peak = timed(lambda: plain_logprobs(loaded, pairs))
    record("plain", "logprobs", seconds, peak)

    if args.skip_bf16:  # the plain update on the plain way's completions
        train_params = step_params(pairs, plain_lp.tolist())
        plain_norm, seconds, peak = timed(lambda: plain_train(trainer, train_params))
        record("plain", "train", seconds, peak, grad_norm=round(plain_norm, 5))
        bf16_pairs, bf16_lp = pairs, plain_lp
    else:
        bf16_pairs, bf16_lp = bf16_phase(loaded, trainer, optimizer, prompts, checks, record)

    fl = floor(loaded, ceilings)
    fl_mx = floor(loaded, ceilings, expert_bytes_per_param=17 / 32)  # 16 bytes + 1 scale per 32
    del trainer, optimizer, loaded
    gc.collect()  # the bf16 phase's model and graphs sit in reference cycles: free them before measuring MXFP4
    if GPU:
        torch.cuda.empty_cache()
    mxfp4_mode(folder, prompts, rows, checks, bf16_pairs, bf16_lp)
    summary = summarize(rows, fl, ceilings, checks)
    summary["floor_mxfp4"] = {k: round(v, 3) for k, v in fl_mx.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_step.json").write_text(json.dumps({**summary, "rows": rows}, indent=2))
    print_table(summary)


def fast_prefill_logprobs(loaded: LoadedModel, pairs: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Logprobs of the completions from the fast decoder run over whole sequences (no padding)."""
    runner = GptOssRunner(loaded.causal_lm)
    ids = torch.tensor([p + c for p, c in pairs], device=loaded.device)
    width, prompt_len = ids.shape[1], len(pairs[0][0])
    cos, sin = runner.rope_table(width)
    slots = torch.arange(width, device=loaded.device)
    pad = torch.zeros(ids.shape[0], dtype=torch.long, device=loaded.device)
    positions = slots.unsqueeze(0).expand(ids.shape[0], -1)
    hidden = runner.forward(
        runner.embed(ids),
        cos[positions],
        sin[positions],
        slots,
        runner.masks(slots, pad, width),
        KVCache.empty(runner, ids.shape[0], width),
    )
    logits = runner.head(hidden[:, prompt_len - 1 : -1]).float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)


def load_mxfp4_mode(folder: Path, device: torch.device) -> LoadedModel:
    """As the engine loads with `experts: mxfp4` (the seed preset): experts packed, embeddings
    offloaded to CPU memory, activation checkpointing, LoRA r4 on q/k/v/o."""
    causal_lm = load_resident(folder, AutoConfig.from_pretrained(folder), device, torch.bfloat16)
    causal_lm.requires_grad_(False)
    if device.type == "cuda":
        offload_embeddings(causal_lm.get_input_embeddings(), device)
    _enable_checkpointing(causal_lm)  # activations of 8 x 350 tokens would pass 16 GB
    use_fast_attention(causal_lm)  # the engine's fast mode (the packed experts are ours already)
    compile_layers(causal_lm, device.type == "cuda")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    model = get_peft_model(causal_lm, config)
    use_fast_lora(model)
    model.eval()
    return LoadedModel(model, causal_lm, None, folder, device, torch.bfloat16, [], True, device.type == "cuda")


def mxfp4_mode(
    folder: Path,
    prompts: list[list[int]],
    rows: list[dict[str, Any]],
    checks: dict,
    bf16_pairs: list[tuple[list[int], list[int]]],
    bf16_logprobs: torch.Tensor,
) -> None:
    """Our way with MXFP4-resident experts: load, generate, logprobs, fused train; peak memory.
    Also the logprobs of the bf16 run's completions, against the bf16 model's (same weights)."""

    def record(phase: str, seconds: float, peak: float, **extra: Any) -> None:
        row = {"way": "ours-mxfp4", "phase": phase, "seconds": round(seconds, 3), "peak_gib": round(peak, 2), "reserved_gib": reserved(), **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)

    device = torch.device("cuda" if GPU else "cpu")
    loaded, seconds, peak = timed(lambda: load_mxfp4_mode(folder, device))
    record("load (experts packed, embeddings offloaded), LoRA r4", seconds, peak)
    set_kernels(GPU and check_mx_kernels(loaded.causal_lm, checks))
    optim = OptimParams(lr=5e-5)
    optimizer, _ = make_optimizer(loaded.trainable, optim, device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, optim), 1.0)
    fast = FastGenerator(loaded.causal_lm)
    settings = SamplingSettings(temperature=1.0)
    gen = torch.Generator(device=device).manual_seed(0)
    # Without the kernels every decode step dequantizes all experts (about 40 s for 200 tokens):
    # then only a few tokens are timed.
    new_tokens = NEW_TOKENS if kernels_enabled() or not GPU else 8
    total = PROMPTS * N * new_tokens
    _, seconds, peak = timed(lambda: fast.generate(prompts, N, new_tokens, settings, [], gen))
    record("generate (first call: graph capture)", seconds, peak)
    completions, seconds, peak, runs = timed_runs(lambda: fast.generate(prompts, N, new_tokens, settings, [], gen))
    record("generate", seconds, peak, tokens_per_s=round(total / seconds, 1), new_tokens=new_tokens, runs=runs)
    pairs = [(prompts[c.prompt_index], c.ids) for c in completions]
    lp = timed_logprobs(loaded, pairs, record)
    sampled = torch.tensor([c.logprobs for c in completions], device=device)
    checks["mxfp4_sampling_vs_logprobs_mean_abs"] = float((sampled - lp).abs().mean())
    with torch.no_grad():
        same, _ = token_logprobs(loaded.causal_lm, make_batch(bf16_pairs, device))
    checks["mxfp4_vs_bf16_logprobs_mean_abs"] = float((same - bf16_logprobs).abs().mean())
    timed_train(trainer, step_params(pairs, sampled.tolist()), record)


def summarize(rows: list[dict[str, Any]], fl: dict[str, float], ceilings: dict[str, float], checks: dict) -> dict:
    def pick(way: str, phase: str) -> float:
        return next(r["seconds"] for r in rows if r["way"] == way and r["phase"] == phase)

    def peak(way: str, key: str = "peak_gib") -> float:
        return max(r[key] for r in rows if r["way"] == way)

    phases = ["generate", "logprobs", "train"]
    plain = {p: pick("plain", p) for p in phases}
    has_ours = any(r["way"] == "ours" for r in rows)  # not with --skip-bf16
    ours = {p: pick("ours", p) for p in phases} if has_ours else None
    mxfp4 = {p: pick("ours-mxfp4", p) for p in phases}
    ways = ("plain", "ours", "ours-mxfp4") if has_ours else ("plain", "ours-mxfp4")
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "gpu": torch.cuda.get_device_name() if GPU else "none",
        "cpu": cpu,
        "torch": torch.__version__,
        "alloc_conf": alloc_conf(),
        "tiles": tiles(),
        "ceilings": {k: round(v, 2) for k, v in ceilings.items()},
        "floor": {k: round(v, 3) for k, v in fl.items()},
        "plain": plain,
        "ours": ours,
        "plain_step_s": round(sum(plain.values()), 3),
        "ours_step_s": round(sum(ours.values()), 3) if ours else None,
        "ours_generate_no_triton": pick("ours", "generate (grouped_mm decode, no Triton)") if ours else None,
        "ours_generate_lora_not_folded": pick("ours", "generate (LoRA not folded)") if ours else None,
        "mxfp4": mxfp4,
        "mxfp4_step_s": round(sum(mxfp4.values()), 3),
        "peak_gib": {w: peak(w) for w in ways},
        "reserved_gib": {w: peak(w, "reserved_gib") for w in ways},
        "checks": checks,
    }


def print_table(s: dict) -> None:
    print(f"\n{s['date']}  GPU {s['gpu']}  CPU {s['cpu']}  torch {s['torch']}")
    print(f"ceilings: {s['ceilings']}  floor: {s['floor']}")
    print(f"checks: {s['checks']}")
    print(f"floor with MXFP4 experts: {s['floor_mxfp4']}")
    print(f"{'phase':<10}{'plain s':>10}{'ours s':>10}{'ratio':>8}{'mxfp4 s':>10}{'ratio':>8}")

    def line(name: str, p: float, o: float | None, m: float) -> None:
        ours = f"{o:>10.3f}{p / o:>8.2f}" if o else f"{'-':>10}{'-':>8}"  # - with --skip-bf16
        print(f"{name:<10}{p:>10.3f}{ours}{m:>10.3f}{p / m:>8.2f}")

    for phase in ("generate", "logprobs", "train"):
        line(phase, s["plain"][phase], s["ours"][phase] if s["ours"] else None, s["mxfp4"][phase])
    line("step", s["plain_step_s"], s["ours_step_s"], s["mxfp4_step_s"])
    if s["ours"]:
        print(f"ours generate without the Triton decode kernel: {s['ours_generate_no_triton']} s")
        print(f"ours generate with LoRA not folded: {s['ours_generate_lora_not_folded']} s")
    print(f"peak GiB: {s['peak_gib']}  reserved GiB: {s['reserved_gib']}")


if __name__ == "__main__":
    main()
