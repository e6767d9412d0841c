"""Build the tiny policy: a small gpt-oss that writes 2048 strategies of varied quality.

    python -m rl2048_engine.tiny_policy --data DATA.json --out DIR [--seed S] [--steps N] ...

DATA.json (written by `rl2048 model tiny`): {"prompt": the user prompt, "reasoning_effort":
"low", "answers": [answer text, ...]}. The builder
  1. renders each answer as a harmony conversation with the engine's chat template,
  2. trains a byte-level BPE tokenizer on them (harmony specials in the published order, as
     templates/tokenizer.py lays them out), pre-tokenized by line so that a line of code is one
     or a few tokens: programs stay short enough to train and sample on a CPU,
  3. writes a gpt-oss folder with random weights (init_model's config, layout and tensors),
  4. warm-starts it with the engine's own `sft_step` (full fine-tuning, float32, on the CPU),
  5. saves it as a transformers folder (`merged_16bit`) and renames it into place.
Same data and seed, same folder. Progress goes to stderr as JSON lines (`{"step": ...}`).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from .engine import Engine
from .init_model import (
    PRESETS,
    Preset,
    Progress,
    TensorMaker,
    generation_config,
    hf_tokenizer,
    model_config,
    tensor_specs,
    write_weights,
)
from .params import LoadParams, OptimParams, SaveParams, ScoredItem, SftStepParams
from .templates.tokenizer import build_tokenizer, special_tokens

LINE_PATTERN = r"[^\n]*\n|[^\n]+"
"""Pre-tokenizer split: each line with its newline (BPE merges never cross a line)."""

PRESET: Preset = PRESETS["tiny"]
"""The architecture: gpt-oss at toy sizes (hidden 64, 2 layers, 4 experts, vocab 2048)."""


def line_tokenizer(texts: Iterable[str], preset: Preset) -> Tokenizer:
    """Byte-level BPE trained on `texts` split by line, ids laid out as templates/tokenizer.py."""
    specials = special_tokens(preset.regular_vocab_size, preset.vocab_size)
    special_split = re.compile("|".join(re.escape(s) for s in specials.values()))
    # Specials are matched before BPE at encoding time, so they are left out of training.
    pieces = (piece for text in texts for piece in special_split.split(text) if piece)
    return build_tokenizer(pieces, preset.regular_vocab_size, preset.vocab_size, split_pattern=LINE_PATTERN)


def conversation(fast: PreTrainedTokenizerFast, prompt: str, effort: str, answer: str | None) -> str:
    """The harmony text of the prompt (then the generation prompt) or of prompt and answer."""
    messages = [{"role": "user", "content": prompt}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    text = fast.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=answer is None, reasoning_effort=effort
    )
    assert isinstance(text, str)
    return text


def write_folder(folder: Path, fast: PreTrainedTokenizerFast, seed: int) -> None:
    """A gpt-oss folder with random weights and this tokenizer (init_model's layout)."""
    (folder / "config.json").write_text(json.dumps(model_config(PRESET, False), indent=2) + "\n")
    (folder / "generation_config.json").write_text(json.dumps(generation_config(PRESET), indent=2) + "\n")
    fast.save_pretrained(str(folder))
    specs = tensor_specs(PRESET, False)
    quiet = Progress(sum(s.nbytes for s in specs), jsonl=False)
    quiet.tensor = lambda spec: None  # type: ignore[method-assign]
    write_weights(folder, specs, TensorMaker(seed, torch.device("cpu")), quiet)


def log(**fields: object) -> None:
    print(json.dumps(fields), file=sys.stderr, flush=True)


def build(data: dict, out: Path, seed: int, steps: int, batch: int, lr: float) -> dict:
    """Builds the folder `out` (must not exist); returns what the build measured."""
    started = time.monotonic()
    prompt, effort, answers = data["prompt"], data.get("reasoning_effort", "low"), data["answers"]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        draft = hf_tokenizer(line_tokenizer([prompt], PRESET))  # renders the texts to train on
        texts = [conversation(draft, prompt, effort, a) for a in answers]
        fast = hf_tokenizer(line_tokenizer(texts, PRESET))
        base = work / "base"
        base.mkdir()
        write_folder(base, fast, seed)

        prompt_text = conversation(fast, prompt, effort, None)
        prompt_ids = fast.encode(prompt_text, add_special_tokens=False)
        items = []
        for text in texts:
            assert text.startswith(prompt_text), "the chat template must extend the generation prompt"
            completion = fast.encode(text[len(prompt_text) :], add_special_tokens=False)
            items.append(ScoredItem(prompt=prompt_ids, completion=completion))
        lengths = [len(it.completion) for it in items]
        log(phase="tokenized", answers=len(items), prompt_tokens=len(prompt_ids), mean_tokens=sum(lengths) / len(lengths))

        # Full fine-tuning in float32 on one CPU thread (much faster than two for a model this
        # small on a shared machine), linear decay after a short warm-up.
        engine = Engine()
        optim = OptimParams(
            lr=lr, schedule="linear", warmup_steps=min(20, steps // 10), total_steps=steps, betas=(0.9, 0.95)
        )
        load = LoadParams(
            model=str(base), dtype="float32", device="cpu", seed=seed, full_finetune=True, cpu_threads=1, optim=optim
        )
        engine.load(load)
        torch.manual_seed(seed)
        order = random.Random(seed)
        losses: list[float] = []
        for step in range(steps):
            chosen = order.sample(items, min(batch, len(items)))
            losses.append(float(engine.sft_step(SftStepParams(items=chosen))["loss"]))
            if step % 10 == 0 or step == steps - 1:
                recent = losses[-10:]
                log(step=step + 1, steps=steps, loss=round(sum(recent) / len(recent), 4), seconds=round(time.monotonic() - started, 1))

        final = work / "final"
        engine.save(SaveParams(path=str(final), format="merged_16bit"))
        summary = {
            "seed": seed,
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "answers": len(items),
            "params": sum(p.numel() for p in engine.loaded.causal_lm.parameters()),
            "prompt_tokens": len(prompt_ids),
            "mean_completion_tokens": sum(lengths) / len(lengths),
            "max_completion_tokens": max(lengths),
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "seconds": round(time.monotonic() - started, 1),
        }
        (final / "tiny_policy.json").write_text(json.dumps(summary, indent=2) + "\n")
        try:
            final.rename(out)
        except OSError:
            if not (out / "tiny_policy.json").is_file():  # else a concurrent build got there first
                raise
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl2048_engine.tiny_policy", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"tiny_policy: {args.out} already exists", file=sys.stderr)
        return 2
    summary = build(json.loads(args.data.read_text()), args.out, args.seed, args.steps, args.batch, args.lr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
