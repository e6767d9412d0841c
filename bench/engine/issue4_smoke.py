"""Issue 4's GPU record: the `20b` MXFP4 folder loads (bf16 from MXFP4), generates, trains.

    PYTHONPATH=engine python bench/engine/issue4_smoke.py --work /tmp/issue4 [--out DIR]

Steps, each timed, with the GPU's peak allocated memory during the step:
1. `init_model --preset 20b --mxfp4` writes the random-weight folder (skipped if present);
2. `load`: bf16, experts dequantized from MXFP4, LoRA rank 4 on the attention projections,
   gradient checkpointing, embeddings offloaded to CPU memory (the seed's settings);
3. `generate`: 4 prompts of 150 random ids x 2 completions = 8 x 200 new tokens (no stop ids,
   so every completion runs the full 200), twice (the first includes warm-up);
4. `train_step`: GRPO (bnpo, epsilon 0.2/0.28, delta 1.5, gradient accumulation 4) on those 8
   completions, twice;
5. the same load with LoRA also on the experts (`target_parameters`), one generate + train_step;
6. the attention-LoRA load in float32, to tell bf16 rounding from bugs in the logprob check.
After the first generate of each load: the same seed again (identical?), and `logprobs` of the
completions against their sampling logprobs.
Calls go through the engine's own request handler, as the JSON-lines server runs them.
Writes RESULTS.md and results.json into --out (default: beside this file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rl2048_engine.engine import Engine
from rl2048_engine.init_model import init_model
from rl2048_engine.server import handle_line

PROMPTS, N, PROMPT_LEN, NEW_TOKENS = 4, 2, 150, 200
LORA_ATTENTION = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
LORA_EXPERTS = {**LORA_ATTENTION, "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]}
GIB = 1024**3


class Recorder:
    def __init__(self, out: Path) -> None:
        self.out, self.rows, self.meta = out, [], device_info()

    def phase(self, name: str, fn: Any) -> Any:
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = fn()
        if gpu:
            torch.cuda.synchronize()
        gib = (lambda b: round(b / GIB, 2)) if gpu else (lambda b: 0.0)
        row = {
            "phase": name,
            "seconds": round(time.perf_counter() - start, 2),
            "peak_gib": gib(torch.cuda.max_memory_allocated() if gpu else 0),
            "allocated_gib": gib(torch.cuda.memory_allocated() if gpu else 0),
            "reserved_gib": gib(torch.cuda.memory_reserved() if gpu else 0),
        }
        if isinstance(result, dict) and "error" in result:
            row["error"] = result["error"]
        print(json.dumps(row), flush=True)
        self.rows.append(row)
        self.write()
        return result

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "results.json").write_text(json.dumps({"device": self.meta, "phases": self.rows}, indent=2))
        lines = [
            "# Engine smoke test on the GPU (issue 4)",
            "",
            f"Written by `bench/engine/issue4_smoke.py` on {self.meta['date']}.",
            "",
            f"- GPU: {self.meta['gpu']} ({self.meta['gpu_memory_gib']} GiB); CPU: {self.meta['cpu']}",
            (
                f"- torch {self.meta['torch']}, transformers {self.meta['transformers']}, peft {self.meta['peft']},"
                f" Python {self.meta['python']}"
            ),
            (
                "- Model: `init_model --preset 20b --mxfp4` (gpt-oss-20b shape, random weights), loaded in bf16"
                " (float32 where the label says) with the experts dequantized from MXFP4; embeddings offloaded"
                " to CPU; gradient checkpointing."
            ),
            (
                f"- generate: {PROMPTS} prompts x {N} completions, {PROMPT_LEN} prompt tokens, {NEW_TOKENS} new"
                " tokens each (no stop ids); train_step: GRPO bnpo on those 8, gradient accumulation 4, beta 0"
                " (the reference forward for the reported kl still runs)."
            ),
            "- Run: `PYTHONPATH=engine python3 bench/engine/issue4_smoke.py` (peft 0.21.2, pydantic carried as wheels).",
            "- peak: the most GPU memory PyTorch had allocated during the phase; allocated: after it.",
            "",
            "| phase | seconds | peak GiB | allocated GiB | reserved GiB | note |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in self.rows:
            note = r.get("note", "") or (f"error: {r['error']}" if "error" in r else "")
            lines.append(
                f"| {r['phase']} | {r['seconds']} | {r['peak_gib']} | {r['allocated_gib']} | {r['reserved_gib']} | {note} |"
            )
        (self.out / "RESULTS.md").write_text("\n".join(lines) + "\n")


def device_info() -> dict[str, Any]:
    import peft
    import transformers

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    props = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
    return {
        "date": datetime.date.today().isoformat(),
        "gpu": props.name if props else "none (CPU)",
        "gpu_memory_gib": round(props.total_memory / GIB, 1) if props else 0,
        "cpu": cpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
    }


def check_consistency(rec: Recorder, call: Any, prompts: list[list[int]], comps: list[dict], label: str) -> None:
    """Same seed, same completions; `logprobs` of them against their sampling logprobs."""
    again = rec.phase(
        f"generate again, same seed ({label})",
        lambda: call("generate", prompts=prompts, n=N, max_new_tokens=NEW_TOKENS, stop_token_ids=[], seed=0),
    )
    if "error" not in again:
        same = [c["ids"] for c in again["result"]["completions"]] == [c["ids"] for c in comps]
        rec.rows[-1]["note"] = f"identical completions: {same}"
    items = [{"prompt": prompts[c["prompt_index"]], "completion": c["ids"]} for c in comps]
    scored = rec.phase(
        f"logprobs 8x200, policy + reference ({label})", lambda: call("logprobs", items=items, reference=True)
    )
    if "error" not in scored:
        diffs = [abs(a - b) for c, row in zip(comps, scored["result"]["policy"]) for a, b in zip(c["logprobs"], row)]
        rec.rows[-1]["note"] = (
            f"sampling vs recomputed logprob, abs diff: mean {sum(diffs) / len(diffs):.2e},"
            f" max {max(diffs):.2e}, share over 0.1: {sum(d > 0.1 for d in diffs) / len(diffs):.1%}"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/issue4"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--preset", default="20b", help="init_model preset (tiny: a CPU dry run)")
    parser.add_argument("--skip-experts", action="store_true")
    parser.add_argument("--skip-float32", action="store_true", help="skip the float32 run (bf16 mismatch baseline)")
    args = parser.parse_args()
    rec = Recorder(args.out)
    folder = args.work / f"gpt-oss-{args.preset}-mxfp4"
    if not folder.exists():
        rec.phase(f"init_model {args.preset} --mxfp4", lambda: init_model(folder, args.preset, mxfp4=True))

    engine = Engine()

    def call(method: str, **params: Any) -> dict[str, Any]:
        _, _, reply = handle_line(engine, json.dumps({"id": 0, "method": method, "params": params}))
        if "error" in reply:
            print(f"{method}: {reply['error']}", file=sys.stderr)
        return reply

    rng = random.Random(0)
    prompts = [[rng.randrange(1000) for _ in range(PROMPT_LEN)] for _ in range(PROMPTS)]
    optim = {"lr": 5e-5, "weight_decay": 0.001, "schedule": "linear", "warmup_steps": 0, "total_steps": 1000}
    loss = {"type": "bnpo", "epsilon": 0.2, "epsilon_high": 0.28, "delta": 1.5, "beta": 0.0}

    def run(label: str, lora: dict[str, Any], rounds: int, dtype: str = "bfloat16") -> None:
        load = rec.phase(
            f"load ({label})",
            lambda: call(
                "load",
                model=str(folder),
                dtype=dtype,
                seed=0,
                lora=lora,
                gradient_checkpointing=True,
                offload_embeddings=True,
                optim=optim,
            ),
        )
        if "error" in load:
            return
        res = load["result"]
        rec.rows[-1]["note"] = (
            f"params {res['params_total'] / 1e9:.2f} B, trainable {res['params_trainable'] / 1e6:.2f} M,"
            f" optimizer {res['optimizer']}, embeddings offloaded {res['embeddings_offloaded']}"
        )
        for i in range(rounds):
            gen = rec.phase(
                f"generate 8x200 #{i + 1} ({label})",
                lambda seed=i: call(  # type: ignore[misc]
                    "generate", prompts=prompts, n=N, max_new_tokens=NEW_TOKENS, stop_token_ids=[], seed=seed
                ),
            )
            if "error" in gen:
                return
            comps = gen["result"]["completions"]
            tokens = sum(len(c["ids"]) for c in comps)
            rec.rows[-1]["note"] = f"{tokens} tokens, {tokens / rec.rows[-1]['seconds']:.0f} tokens/s"
            if i == 0:
                check_consistency(rec, call, prompts, comps, label)
            items = [
                {
                    "prompt": prompts[c["prompt_index"]],
                    "completion": c["ids"],
                    "advantage": 1.0 if j % 2 == 0 else -1.0,
                    "old_logprobs": c["logprobs"],
                    "truncated": c["finish_reason"] == "length",
                }
                for j, c in enumerate(comps)
            ]
            step = rec.phase(
                f"train_step #{i + 1} ({label})",
                lambda items=items: call(  # type: ignore[misc]
                    "train_step", items=items, loss=loss, gradient_accumulation_steps=4
                ),
            )
            if "error" not in step:
                r = step["result"]
                rec.rows[-1]["note"] = (
                    f"loss {r['loss']:.4f}, kl {r['kl']:.2e}, grad_norm {r['grad_norm']:.3f}, entropy {r['entropy']:.2f}"
                )
        rec.write()

    run("LoRA r4 attention", LORA_ATTENTION, rounds=2)
    if not args.skip_experts:
        run("LoRA r4 attention + experts", LORA_EXPERTS, rounds=1)
    if not args.skip_float32:
        run("float32, LoRA r4 attention", LORA_ATTENTION, rounds=1, dtype="float32")
    rec.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
