"""Where a generate call's time goes: the prefill, the decode step's graph replayed alone, the
token step's graph (fused sampling, recording, decode) replayed alone, sampling alone
(`sample_next`), and the whole call (MXFP4 mode, the seed's 8 rows, 200 tokens).

    PYTHONPATH=engine:bench/engine python3 bench/engine/explore_decode_gap.py [--folder /tmp/bench7/gpt-oss-20b-mxfp4] [--runs plain pdl ...]

`--runs`: one run each, in one process, each with its own generator (compiled and captured
again): `plain`, `pdl` (programmatic dependent launch, `fast/pdl.py`), or `pdl:KERNELS` (PDL in
those of `pdl.KERNELS` only, comma-separated: `inductor`, `routing`, `attention`, `experts`). Each
later run's first call is compared with the first run's: the same tokens, and how far apart the
logprobs are (the same kernels should give the same numbers). Then, once every run has generated,
each later run's decode step is replayed on the first run's state (its KV cache, input token and
slot copied in), `REPLAYS` times: its logits against the first run's on that state (how far
apart, against the logits' own spread: rounding, or wrong numbers) and against its own first
replay (a race would show as replays that differ).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_step import NEW_TOKENS, N, load_mxfp4_mode, seed_prompts
from rl2048_engine.fast import pdl
from rl2048_engine.fast.generation import FastGenerator
from rl2048_engine.init_model import init_model
from rl2048_engine.sampling import SamplingSettings, sample_next


def seconds(fn, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2]


def timings(fast: FastGenerator, prompts: list[list[int]], settings: SamplingSettings, gen: torch.Generator) -> dict[str, float]:
    """Seconds of the calls and replays the module docstring lists (after a first call)."""
    state = fast.state
    assert state is not None and state.token_graph is not None
    logits = state.logits.clone()
    with torch.no_grad():
        decode = fast._capture(state, lambda: fast._step(state))
    out = {
        "generate_s": seconds(lambda: fast.generate(prompts, N, NEW_TOKENS, settings, [], gen)),
        "prefill_only_s": seconds(lambda: fast.generate(prompts, N, 1, settings, [], gen)),
        "replays_only_s": seconds(lambda: [decode.replay() for _ in range(NEW_TOKENS - 1)]),
        "token_replays_s": seconds(lambda: [state.step.zero_()] + [state.token_graph.replay() for _ in range(NEW_TOKENS - 1)]),
        "sampling_only_s": seconds(lambda: [sample_next(logits, settings, gen) for _ in range(NEW_TOKENS)]),
    }
    out["rest_s"] = out["generate_s"] - out["prefill_only_s"] - out["replays_only_s"]
    out["replay_ms_per_token"] = 1000 * out["replays_only_s"] / (NEW_TOKENS - 1)
    return {k: round(v, 4) for k, v in out.items()}


REPLAYS = 20


def same_state_logits(first: FastGenerator, later: FastGenerator) -> dict[str, float]:
    """`later`'s decode step replayed on `first`'s state, against `first`'s: see the module doc."""
    a, b = first.state, later.state
    assert a is not None and b is not None
    for src, dst in zip(a.cache.keys + a.cache.values, b.cache.keys + b.cache.values, strict=True):
        dst.copy_(src)
    for name in ("hidden", "slot", "pad", "width"):
        getattr(b, name).copy_(getattr(a, name))
    with torch.no_grad():
        graph_a = first._capture(a, lambda: first._step(a))
        graph_b = later._capture(b, lambda: later._step(b))
    graph_a.replay()
    want = a.logits.clone()
    got = []
    for _ in range(REPLAYS):
        graph_b.replay()
        got.append(b.logits.clone())
    diff = (got[0] - want).abs()
    return {
        "logits_std": float(want.std()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "argmax_same_rows": int((got[0].argmax(-1) == want.argmax(-1)).sum()),
        "replays_max_abs_diff": max(float((g - got[0]).abs().max()) for g in got),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench7/gpt-oss-20b-mxfp4"))
    parser.add_argument("--runs", nargs="+", default=["plain"], help="plain, pdl or pdl:KERNEL,...: one run each")
    args = parser.parse_args()
    every_kernel, runs = set(pdl.KERNELS), []  # (PDL on, our kernels that take it) per run
    for run in args.runs:
        kind, _, names = run.partition(":")
        kernels = set(names.split(",")) if names else every_kernel
        if kind not in ("plain", "pdl") or not kernels <= every_kernel:
            parser.error(f"--runs: {run!r} is not plain, pdl or pdl:KERNEL,... with kernels of {sorted(every_kernel)}")
        runs.append((kind == "pdl", kernels))
    device = torch.device("cuda")
    if not args.folder.exists():
        init_model(args.folder, "20b", mxfp4=True)
    loaded = load_mxfp4_mode(args.folder, device)
    prompts = seed_prompts()
    settings = SamplingSettings(temperature=1.0)
    gen = torch.Generator(device=device).manual_seed(0)
    firsts, generators = [], []
    for run, (enabled, kernels) in zip(args.runs, runs):
        pdl.ENABLED, pdl.KERNELS = enabled, kernels
        fast = FastGenerator(loaded.causal_lm)  # compiles and captures again (the kernels differ)
        firsts.append(fast.generate(prompts, N, NEW_TOKENS, settings, [], torch.Generator(device=device).manual_seed(0)))
        print(json.dumps({"run": run, **timings(fast, prompts, settings, gen)}), flush=True)
        generators.append(fast)
    for run, later in zip(args.runs[1:], firsts[1:]):  # against the first run's first call
        print(json.dumps({
            "run": run,
            "same_tokens_as_first_run": [c.ids for c in later] == [c.ids for c in firsts[0]],
            "max_logprob_diff": max(abs(a - b) for x, y in zip(firsts[0], later) for a, b in zip(x.logprobs, y.logprobs)),
        }), flush=True)  # fmt: skip
    for run, later in zip(args.runs[1:], generators[1:]):
        print(json.dumps({"run": run, "same_state": same_state_logits(generators[0], later)}), flush=True)
    state = fast.state
    assert state is not None
    logits = state.logits.clone()

    # GPU time by kernel in the prefill (a 1-token generate) and in the sampling calls.
    for name, fn in (
        ("prefill", lambda: fast.generate(prompts, N, 1, settings, [], gen)),
        ("sampling x 200", lambda: [sample_next(logits, settings, gen) for _ in range(NEW_TOKENS)]),
        ("fused sampler x 200", lambda: [fast._fused_sample(state) for _ in range(NEW_TOKENS)]),
    ):
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
        total = sum(e.self_device_time_total for e in events)
        top = sorted(events, key=lambda e: -e.self_device_time_total)[:12]
        print(json.dumps({
            "profile": name,
            "gpu_ms": round(total / 1000, 2),
            "kernels": sum(e.count for e in events),
            "top": [(e.key[:70], e.count, round(e.self_device_time_total / 1000, 2)) for e in top],
        }), flush=True)


if __name__ == "__main__":
    main()
