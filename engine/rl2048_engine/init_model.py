"""Write a gpt-oss checkpoint with random weights in the published layout.

    python -m rl2048_engine.init_model --preset tiny|20b --out DIR [--mxfp4] [--seed S]

The folder holds what openai/gpt-oss-20b ships: config.json (every published field),
generation_config.json, safetensors weights under the published names and dtypes (bf16; with
`--mxfp4` the MoE experts as `*_blocks`/`*_scales` and a `quantization_config`, as published),
sharded with model.safetensors.index.json once they pass 5 GB, the tokenizer files (byte-level
BPE with the harmony special tokens, see templates/tokenizer.py) and chat_template.jinja.

`tiny` keeps the architecture at toy sizes (runs on a CPU in seconds); `20b` is the full shape.
Tensors are made one at a time (on the GPU when there is one) and streamed into their shard
file, so memory stays near the largest tensor (20b: 1.2 GB; 3 GB peak RSS measured on CPU).
The folder is built beside DIR and renamed into place at the end.
Progress goes to stderr; `--progress-jsonl` prints one JSON object per tensor on stdout instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .mxfp4 import quantize_mxfp4
from .templates.sample_text import SAMPLE_TEXTS
from .templates.tokenizer import build_tokenizer, special_token_id

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

TRANSFORMERS_VERSION = "4.55.0.dev0"
"""The version string gpt-oss-20b was published with (kept in config.json as published)."""

MAX_SHARD_BYTES = 5 * 1024**3
INIT_STD = 0.02


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_local_experts: int
    num_experts_per_tok: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    regular_vocab_size: int
    vocab_size: int


PRESETS = {
    "20b": Preset(2880, 2880, 24, 32, 4, 64, 8, 64, 199998, 201088),
    # Same architecture, toy sizes. Dims are multiples of 32 (MXFP4 blocks). The vocabulary
    # keeps the harmony tokens in their published order after 2000 regular tokens.
    "tiny": Preset(64, 64, 2, 4, 2, 4, 2, 16, 2000, 2048),
}


def token_id(preset: Preset, name: str) -> int:
    """The id of a named harmony token (e.g. "<|return|>") in this preset's vocabulary."""
    return special_token_id(name, preset.regular_vocab_size)


def model_config(preset: Preset, mxfp4: bool) -> dict:
    """config.json: the published gpt-oss-20b fields, with this preset's sizes."""
    config = {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": token_id(preset, "<|return|>"),
        "experts_per_token": preset.num_experts_per_tok,
        "head_dim": preset.head_dim,
        "hidden_act": "silu",
        "hidden_size": preset.hidden_size,
        "initial_context_length": 4096,
        "initializer_range": INIT_STD,
        "intermediate_size": preset.intermediate_size,
        "layer_types": [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(preset.num_hidden_layers)
        ],
        "max_position_embeddings": 131072,
        "model_type": "gpt_oss",
        "num_attention_heads": preset.num_attention_heads,
        "num_experts_per_tok": preset.num_experts_per_tok,
        "num_hidden_layers": preset.num_hidden_layers,
        "num_key_value_heads": preset.num_key_value_heads,
        "num_local_experts": preset.num_local_experts,
        "output_router_logits": False,
        "pad_token_id": token_id(preset, "<|endoftext|>"),
        "quantization_config": {
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
            "quant_method": "mxfp4",
        },
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "factor": 32.0,
            "original_max_position_embeddings": 4096,
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": 150000,
        "router_aux_loss_coef": 0.9,
        "sliding_window": 128,
        "swiglu_limit": 7.0,
        "tie_word_embeddings": False,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": preset.vocab_size,
    }
    if not mxfp4:
        del config["quantization_config"]
    return config


def generation_config(preset: Preset) -> dict:
    """generation_config.json as published: stop on <|return|>, <|endoftext|> or <|call|>."""
    return {
        "bos_token_id": token_id(preset, "<|startoftext|>"),
        "do_sample": True,
        "eos_token_id": [token_id(preset, t) for t in ("<|return|>", "<|endoftext|>", "<|call|>")],
        "pad_token_id": token_id(preset, "<|endoftext|>"),
        "transformers_version": TRANSFORMERS_VERSION,
    }


@dataclass(frozen=True)
class TensorSpec:
    """One stored tensor: `init` is "normal" (std 0.02), "ones", or "mxfp4_blocks"/"mxfp4_scales"
    (the pair made from one random [experts, out, in] weight; see `make_tensors`)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    init: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def tensor_specs(preset: Preset, mxfp4: bool) -> list[TensorSpec]:
    """Every tensor of the checkpoint, in the order it is written."""
    p, bf16 = preset, torch.bfloat16
    hidden, inter, experts = p.hidden_size, p.intermediate_size, p.num_local_experts
    q_out, kv_out = p.num_attention_heads * p.head_dim, p.num_key_value_heads * p.head_dim
    specs = [TensorSpec("model.embed_tokens.weight", (p.vocab_size, hidden), bf16, "normal")]
    for layer in range(p.num_hidden_layers):
        pre = f"model.layers.{layer}"
        specs += [
            TensorSpec(f"{pre}.input_layernorm.weight", (hidden,), bf16, "ones"),
            TensorSpec(f"{pre}.self_attn.q_proj.weight", (q_out, hidden), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.q_proj.bias", (q_out,), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.k_proj.weight", (kv_out, hidden), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.k_proj.bias", (kv_out,), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.v_proj.weight", (kv_out, hidden), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.v_proj.bias", (kv_out,), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.o_proj.weight", (hidden, q_out), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.o_proj.bias", (hidden,), bf16, "normal"),
            TensorSpec(f"{pre}.self_attn.sinks", (p.num_attention_heads,), bf16, "normal"),
            TensorSpec(f"{pre}.post_attention_layernorm.weight", (hidden,), bf16, "ones"),
            TensorSpec(f"{pre}.mlp.router.weight", (experts, hidden), bf16, "normal"),
            TensorSpec(f"{pre}.mlp.router.bias", (experts,), bf16, "normal"),
        ]
        # Experts: transformers holds gate_up_proj [E, hidden, 2*inter] and down_proj
        # [E, inter, hidden]; MXFP4 stores them as [E, out, in/32, 16] blocks.
        for proj, in_dim, out_dim in (("gate_up_proj", hidden, 2 * inter), ("down_proj", inter, hidden)):
            name = f"{pre}.mlp.experts.{proj}"
            if mxfp4:
                specs += [
                    TensorSpec(f"{name}_blocks", (experts, out_dim, in_dim // 32, 16), torch.uint8, "mxfp4_blocks"),
                    TensorSpec(f"{name}_scales", (experts, out_dim, in_dim // 32), torch.uint8, "mxfp4_scales"),
                ]
            else:
                specs.append(TensorSpec(name, (experts, in_dim, out_dim), bf16, "normal"))
            specs.append(TensorSpec(f"{name}_bias", (experts, out_dim), bf16, "normal"))
    specs += [
        TensorSpec("model.norm.weight", (hidden,), bf16, "ones"),
        TensorSpec("lm_head.weight", (p.vocab_size, hidden), bf16, "normal"),
    ]
    return specs


def shard_plan(specs: list[TensorSpec], max_bytes: int = MAX_SHARD_BYTES) -> list[list[TensorSpec]]:
    """Split the tensors, in order, into shards of at most `max_bytes` (a bigger tensor alone)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


class TensorMaker:
    """Makes the random tensors of `tensor_specs`, seeded, on `device`; returns them on the CPU."""

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.pending_scales: torch.Tensor | None = None

    def make(self, spec: TensorSpec) -> torch.Tensor:
        if spec.init == "ones":
            return torch.ones(spec.shape, dtype=spec.dtype)
        if spec.init == "normal":
            return self._normal(spec.shape).cpu()
        if spec.init == "mxfp4_blocks":
            weight = self._normal(spec.shape[:-2] + (spec.shape[-2] * 32,))
            blocks, scales = quantize_mxfp4(weight)
            self.pending_scales = scales.cpu()
            return blocks.cpu()
        if spec.init == "mxfp4_scales":
            scales, self.pending_scales = self.pending_scales, None
            assert scales is not None and tuple(scales.shape) == spec.shape, spec.name
            return scales
        raise ValueError(f"unknown init {spec.init!r}")

    def _normal(self, shape: tuple[int, ...], chunk: int = 1 << 26) -> torch.Tensor:
        """bf16 N(0, 0.02) values, drawn in float32 `chunk` values at a time (no full float32 copy)."""
        out = torch.empty(shape, dtype=torch.bfloat16, device=self.device)
        flat = out.view(-1)
        for start in range(0, flat.numel(), chunk):
            part = flat[start : start + chunk]
            part.copy_(torch.empty(part.shape, device=self.device).normal_(0.0, INIT_STD, generator=self.generator))
        return out


SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.uint8: "U8"}


def safetensors_header(specs: list[TensorSpec]) -> bytes:
    """The header of a safetensors file holding `specs` in order, so the data can be streamed
    after it tensor by tensor (`safetensors.save_file` needs every tensor in memory at once)."""
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        entries[spec.name] = {
            "dtype": SAFETENSORS_DTYPES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
    return len(header).to_bytes(8, "little") + header


def write_weights(
    folder: Path,
    specs: list[TensorSpec],
    maker: TensorMaker,
    progress: "Progress",
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> list[str]:
    """Write the safetensors shard by shard (one file `model.safetensors` when it fits in one)."""
    shards = shard_plan(specs, max_shard_bytes)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map = {}
    for file_name, shard in zip(names, shards):
        with open(folder / file_name, "wb") as f:
            f.write(safetensors_header(shard))
            for spec in shard:
                tensor = maker.make(spec)
                assert tuple(tensor.shape) == spec.shape and tensor.dtype == spec.dtype, spec.name
                f.write(tensor.contiguous().view(torch.uint8).numpy().data)
                del tensor
                weight_map[spec.name] = file_name
                progress.tensor(spec)
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(s.nbytes for s in specs)}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        names.append("model.safetensors.index.json")
    return names


def chat_template() -> str:
    """The harmony chat template shipped with the engine (templates/harmony.jinja)."""
    return resources.files("rl2048_engine.templates").joinpath("harmony.jinja").read_text()


def hf_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """A `tokenizers` tokenizer as transformers loads gpt-oss's: its special tokens, our chat template."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|startoftext|>",
        eos_token="<|return|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.chat_template = chat_template()
    return fast


def write_tokenizer(folder: Path, preset: Preset, texts: list[str] = SAMPLE_TEXTS) -> None:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json and chat_template.jinja."""
    hf_tokenizer(build_tokenizer(texts, preset.regular_vocab_size, preset.vocab_size)).save_pretrained(str(folder))
    # The published class name (transformers 5 writes its own alias), so 4.x loads it too.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    special_map = {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")


def init_model(
    out: Path,
    preset_name: str,
    mxfp4: bool = False,
    seed: int = 0,
    device: str | None = None,
    progress: "Progress | None" = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write the checkpoint into `out` (which must not exist or be empty); returns `out`."""
    preset = PRESETS[preset_name]
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty folder")
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    specs = tensor_specs(preset, mxfp4)
    progress = progress or Progress(sum(s.nbytes for s in specs), jsonl=False)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (work / "config.json").write_text(json.dumps(model_config(preset, mxfp4), indent=2) + "\n")
        (work / "generation_config.json").write_text(json.dumps(generation_config(preset), indent=2) + "\n")
        write_tokenizer(work, preset)
        write_weights(work, specs, TensorMaker(seed, torch_device), progress, max_shard_bytes)
        _use_default_modes(work)
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress.done(out)
    return out


def _use_default_modes(folder: Path) -> None:
    """mkdtemp makes a private folder; give it and its files the modes the umask asks for."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


class Progress:
    """Reports bytes written: a line on stderr now and then, or JSON lines on stdout."""

    def __init__(self, total_bytes: int, jsonl: bool):
        self.total, self.written, self.jsonl = total_bytes, 0, jsonl
        self.started = self.last = time.monotonic()

    def tensor(self, spec: TensorSpec) -> None:
        self.written += spec.nbytes
        now = time.monotonic()
        if self.jsonl:
            print(json.dumps({"tensor": spec.name, "bytes": self.written, "total": self.total}), flush=True)
        elif now - self.last > 2 or self.written == self.total:
            self.last = now
            print(f"init_model: {self.written / 1e6:,.1f} / {self.total / 1e6:,.1f} MB", file=sys.stderr, flush=True)

    def done(self, out: Path) -> None:
        seconds = time.monotonic() - self.started
        if self.jsonl:
            print(json.dumps({"done": str(out), "seconds": round(seconds, 3)}), flush=True)
        else:
            print(f"init_model: wrote {out} in {seconds:.1f}s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl2048_engine.init_model", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument("--mxfp4", action="store_true", help="store the MoE experts in MXFP4, as published")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="where to make the tensors (default: cuda if present)")
    parser.add_argument("--progress-jsonl", action="store_true", help="JSON progress lines on stdout")
    args = parser.parse_args(argv)
    specs = tensor_specs(PRESETS[args.preset], args.mxfp4)
    progress = Progress(sum(s.nbytes for s in specs), jsonl=args.progress_jsonl)
    try:
        init_model(args.out, args.preset, mxfp4=args.mxfp4, seed=args.seed, device=args.device, progress=progress)
    except (FileExistsError, OSError) as error:
        print(f"init_model: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
