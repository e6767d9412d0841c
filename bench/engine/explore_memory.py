"""Issue 7: GPU memory of the seed step in MXFP4 mode, through the engine as the product runs it.

    PYTHONPATH=engine python3 bench/engine/explore_memory.py [--work /tmp/bench7] [--steps 3] [--preset 20b|tiny]
        [--no-row-tiles] [--routing] [--tiles TUNED.json ...] [--pdl] [--eager-layers] [--whole-rows]
        [--one-prompt]

Loads the `20b` MXFP4 random-weight folder (made by `init_model` when missing) with the seed
preset's load settings (experts packed, fast, embeddings offloaded, checkpointing, LoRA r4 on
q/k/v/o, 8-bit AdamW), then runs `--steps` seed steps through `Engine`: generate 4 prompts x 2
completions of 200 tokens (no stop ids), then one update with `compute_kl` (the preset's). For
each phase: seconds, the peak of allocated tensors and the peak the caching allocator reserved
(cached blocks and CUDA graphs' pools), in GiB, under the engine's allocator settings
(expandable segments unless `PYTORCH_CUDA_ALLOC_CONF` says otherwise; printed with the result).
Prints one JSON line per phase, then a summary line. `--preset tiny` is a CPU dry run of the script.
`--no-row-tiles`: the many-row MXFP4 kernels take one expert's rows a program, as before 12-07,
instead of one row tile (`moe_kernels.TILES`, `ROW_TILES`). `--routing`: in the first step (as it
runs, before any capture) the rows each expert got in every many-row call, summarized as the
busiest expert's rows over the mean, per layer call (prefill, then the update's forward passes); it
waits on the device at each call, so that step's times are not the engine's. `--tiles`: the picks
of `tune_kernels.py` runs (their JSON output) replace those launch settings first. `--pdl`: the
decode step's kernels take programmatic dependent launch (`fast/pdl.py`). `--eager-layers`: the
decoder layers run as transformers wrote them in training and scoring, where the engine compiles
them on a GPU (`fast/training.py`, `compile_layers`). `--whole-rows`: the update and the logprobs
pass run every row as prompt + completion, where the engine gives each distinct prompt one copy
that its completions share (`logprobs.make_batch`, `share_prompts`). `--one-prompt`: the 4 groups
get the same prompt, as the product's step does (`rl2048 train` asks for one prompt in every
group), where by default each group has its own, as `bench_step.py`'s.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

from rl2048_engine import use_expandable_segments

use_expandable_segments()  # as the engine does, before torch starts CUDA

import torch  # noqa: E402

from rl2048_engine import engine as engine_module
from rl2048_engine.engine import Engine
from rl2048_engine.fast import moe_kernels, pdl
from rl2048_engine.fast.mxfp4_experts import MxExperts
from rl2048_engine.init_model import init_model
from rl2048_engine.params import GenerateParams, LoadParams, TrainStepParams
from bench_step import GIB, GPU, alloc_conf, reserved, set_row_tiles, set_shared_prompts, tiles, timed  # bench/engine/bench_step.py

PROMPTS, N, PROMPT_LEN, NEW_TOKENS = 4, 2, 150, 200


def record_routing(counts: list[list[int]]) -> Callable[[], None]:
    """Make every `MxExperts` append the rows per expert of its many-row calls to `counts`;
    returns what undoes it."""
    plain = MxExperts.grouped_linears

    def recording(self: MxExperts):  # type: ignore[no-untyped-def]
        gate_up, gate_up_bias, down, down_bias = plain(self)

        def gate_up_recorded(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            if moe_kernels._row_class(x.shape[0], offsets.numel()) == "many":
                counts.append(torch.diff(offsets, prepend=offsets.new_zeros(1)).tolist())
            return gate_up(x, offsets)

        return gate_up_recorded, gate_up_bias, down, down_bias

    MxExperts.grouped_linears = recording  # type: ignore[method-assign]

    def restore() -> None:
        MxExperts.grouped_linears = plain  # type: ignore[method-assign]

    return restore


def routing_summary(counts: list[list[int]]) -> dict[str, object]:
    """The busiest expert's rows over the mean rows an expert, across the recorded calls."""
    ratios = sorted(max(c) * len(c) / sum(c) for c in counts if sum(c))
    if not ratios:
        return {"calls": 0}
    return {
        "calls": len(ratios),
        "rows": sorted({sum(c) for c in counts}),
        "busiest_over_mean": {"min": round(ratios[0], 2), "median": round(ratios[len(ratios) // 2], 2), "max": round(ratios[-1], 2)},
        "experts_without_rows_median": sorted(sum(n == 0 for n in c) for c in counts)[len(counts) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench7"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--preset", default="20b")
    parser.add_argument("--no-row-tiles", action="store_true", help="one expert's rows a program in the many-row kernels")
    parser.add_argument("--routing", action="store_true", help="record the rows per expert in the first step")
    parser.add_argument("--tiles", type=Path, nargs="*", default=[], help="tune_kernels.py outputs whose picks to use")
    parser.add_argument("--pdl", action="store_true", help="programmatic dependent launch in decode (fast/pdl.py)")
    parser.add_argument("--eager-layers", action="store_true", help="decoder layers not compiled (fast/training.py)")
    parser.add_argument("--whole-rows", action="store_true", help="no shared prompts in training and scoring")
    parser.add_argument("--one-prompt", action="store_true", help="the same prompt in every group, as the product")
    args = parser.parse_args()
    set_shared_prompts(not args.whole_rows)
    if args.eager_layers:  # the engine's compile_layers, off
        engine_module.compile_layers = lambda causal_lm: None
    pdl.ENABLED = args.pdl
    for tuned in args.tiles:
        report = json.loads(tuned.read_text())
        for kind, result in report.items():
            if isinstance(result, dict) and "best" in result:
                moe_kernels.TILES[kind, report["rows"]] = result["best"]
    if args.no_row_tiles:
        set_row_tiles(False)
    folder = args.work / f"gpt-oss-{args.preset}-mxfp4"
    if not folder.exists():
        init_model(folder, args.preset, mxfp4=True)

    rows: list[dict[str, object]] = []

    def phase(name: str, fn):  # type: ignore[no-untyped-def]
        result, seconds, peak = timed(fn)
        row = {
            "phase": name,
            "seconds": round(seconds, 3),
            "peak_allocated_gib": round(peak, 2),
            "peak_reserved_gib": reserved(),
            "reserved_after_gib": round(torch.cuda.memory_reserved() / GIB, 2) if GPU else 0.0,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        return result

    engine = Engine()
    load = LoadParams.model_validate(
        {
            "model": str(folder),
            "lora": {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
            "gradient_checkpointing": True,
            "offload_embeddings": True,
            "fast": True,
            "experts": "mxfp4",
            "optim": {"lr": 5e-5, "eight_bit": True, "weight_decay": 0.001},
        }
    )
    loaded = phase("load", lambda: engine.load(load))
    print(json.dumps({"optimizer": loaded.get("optimizer")}), flush=True)
    rng = random.Random(0)
    vocab = 1000 if args.preset == "tiny" else 199_998
    prompts = [[rng.randrange(vocab) for _ in range(PROMPT_LEN)] for _ in range(PROMPTS)]
    if args.one_prompt:  # as the product asks: the same prompt in every group
        prompts = [prompts[0]] * PROMPTS
    loss = {"type": "bnpo", "epsilon": 0.2, "epsilon_high": 0.28, "delta": 1.5, "beta": 0.0, "compute_kl": True}
    counts: list[list[int]] = []
    stop_recording = record_routing(counts) if args.routing else None
    for step in range(1, args.steps + 1):
        if step == 2 and stop_recording:
            stop_recording()
            print(json.dumps({"routing": routing_summary(counts)}), flush=True)
        gen = GenerateParams(prompts=prompts, n=N, max_new_tokens=NEW_TOKENS, stop_token_ids=[])
        completions = phase(f"generate {step}", lambda: engine.generate(gen))["completions"]
        items = [
            {"prompt": prompts[c["prompt_index"]], "completion": c["ids"], "advantage": 1.0 if i % 2 else -1.0}
            for i, c in enumerate(completions)
        ]
        train = TrainStepParams.model_validate({"items": items, "loss": loss, "gradient_accumulation_steps": 4})
        phase(f"train {step}", lambda: engine.train_step(train))
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name() if GPU else "cpu",
                "torch": torch.__version__,
                "alloc_conf": alloc_conf(),
                "pdl": args.pdl,
                "compiled_layers": not args.eager_layers,
                "shared_prompts": not args.whole_rows,
                "one_prompt": args.one_prompt,
                "tiles": tiles(),
                "peak_allocated_gib": max(r["peak_allocated_gib"] for r in rows),  # type: ignore[type-var]
                "peak_reserved_gib": max(r["peak_reserved_gib"] for r in rows),  # type: ignore[type-var]
                "later_steps_reserved_gib": max(
                    (r["peak_reserved_gib"] for r in rows if r["phase"] not in ("load", "generate 1", "train 1")),
                    default=None,
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
