"""The engine's state and one handler per RPC method (the wire format is in server.py)."""

from __future__ import annotations

import gc
import platform
import random
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
import transformers
from pydantic import BaseModel

from . import __version__
from .errors import EngineError
from .fast.attention import use_fast_attention
from .fast.forward import use_fast_experts
from .fast.generation import FastGenerator
from .fast.lora import use_fast_lora
from .fast.graphs import CudaGraphs
from .fast.training import compile_layers, completion_logprobs, train_step_fused
from .generation import generate
from .loading import LoadedModel, load_model
from .optim import make_optimizer, make_scheduler
from .params import (
    GenerateParams,
    LoadParams,
    LoadStateParams,
    LogprobsParams,
    NoParams,
    SaveParams,
    SftStepParams,
    TrainStepParams,
)
from .sampling import SamplingSettings
from .saving import load_state, save
from .training import Trainer, sft_step, train_step

PROTOCOL = 1


class Engine:
    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.generator: torch.Generator | None = None
        self.optimizer_name = ""
        self.fast_generator: FastGenerator | None = None
        self.graphs: CudaGraphs | None = None
        self.handlers: dict[str, tuple[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
            "info": (NoParams, self.info),
            "load": (LoadParams, self.load),
            "generate": (GenerateParams, self.generate),
            "logprobs": (LogprobsParams, self.logprobs),
            "train_step": (TrainStepParams, self.train_step),
            "sft_step": (SftStepParams, self.sft_step),
            "save": (SaveParams, self.save),
            "load_state": (LoadStateParams, self.load_state),
            "shutdown": (NoParams, lambda _: {}),
        }

    @property
    def loaded(self) -> LoadedModel:
        return self.require().loaded

    def require(self) -> Trainer:
        if self.trainer is None:
            raise EngineError("not_loaded", "no model loaded: call load first")
        return self.trainer

    def info(self, _: NoParams) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "engine_version": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "memory": memory(),
        }

    def load(self, p: LoadParams) -> dict[str, Any]:
        self.trainer = None  # free the previous model first
        self.fast_generator = None
        self.graphs = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if p.cpu_threads is not None:
            torch.set_num_threads(p.cpu_threads)  # 1 is much faster for tiny models on a busy CPU
        random.seed(p.seed)
        np.random.seed(p.seed)
        loaded = load_model(p)
        optimizer, scheduler = None, None
        if loaded.trainable:
            optimizer, self.optimizer_name = make_optimizer(loaded.trainable, p.optim, loaded.device)
            scheduler = make_scheduler(optimizer, p.optim)
        self.trainer = Trainer(loaded, optimizer, scheduler, p.optim.max_grad_norm)
        self.generator = torch.Generator(device=loaded.device).manual_seed(p.seed)
        if p.fast:
            try:
                # Folding LoRA into the attention weights costs their size again (1.2 GiB for
                # gpt-oss-20b): not in MXFP4 mode, whose point is to fit in 16 GB.
                self.fast_generator = FastGenerator(loaded.causal_lm, fold_lora=p.experts != "mxfp4")
                for model in (loaded.causal_lm, loaded.reference):  # logprobs and training: fused attention with sinks
                    if model is not None:
                        use_fast_attention(model)
                use_fast_lora(loaded.model)  # and LoRA in bf16, one autograd function a projection
                if p.experts != "mxfp4":  # MXFP4-resident experts run our experts' forward already
                    use_fast_experts(loaded.causal_lm)
                if loaded.device.type == "cuda":
                    compile_layers(loaded.causal_lm)  # the update's and scoring's layers fused
                    if p.cuda_graphs:  # and replayed
                        self.graphs = CudaGraphs()
            except ValueError as err:
                raise EngineError("bad_request", f"fast: {err}") from err
        config = loaded.causal_lm.config
        return {
            "params_total": sum(t.numel() for t in loaded.model.parameters()),
            "params_trainable": sum(t.numel() for t in loaded.trainable),
            "vocab_size": config.vocab_size,
            "stop_token_ids": loaded.stop_token_ids,
            "model_type": config.model_type,
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "mxfp4_dequantized": loaded.mxfp4_source,
            "embeddings_offloaded": loaded.embeddings_offloaded,
            "optimizer": self.optimizer_name if loaded.trainable else None,
            "memory": memory(),
        }

    def generate(self, p: GenerateParams) -> dict[str, Any]:
        loaded = self.loaded
        self._check_ids([t for prompt in p.prompts for t in prompt])
        generator = self.generator
        assert generator is not None
        if p.seed is not None:
            generator = torch.Generator(device=loaded.device).manual_seed(p.seed)
        settings = SamplingSettings(p.temperature, p.top_p, p.top_k, p.min_p)
        stops = loaded.stop_token_ids if p.stop_token_ids is None else p.stop_token_ids
        if self.fast_generator is not None:
            completions = self.fast_generator.generate(p.prompts, p.n, p.max_new_tokens, settings, stops, generator)
        else:
            completions = generate(
                loaded.model, p.prompts, p.n, p.max_new_tokens, settings, stops, generator, loaded.device
            )
        return {"completions": [asdict(c) for c in completions]}

    def logprobs(self, p: LogprobsParams) -> dict[str, Any]:
        self._check_ids([t for it in p.items for t in it.prompt + it.completion])
        pairs = [(it.prompt, it.completion) for it in p.items]
        policy, reference = completion_logprobs(self.loaded, pairs, p.temperature, p.reference, self.graphs)
        lengths = [len(it.completion) for it in p.items]
        result: dict[str, Any] = {"policy": _rows(policy, lengths)}
        if reference is not None:
            result["reference"] = _rows(reference, lengths)
        return result

    def train_step(self, p: TrainStepParams) -> dict[str, Any]:
        """The GRPO update's report, with the GPU memory since the previous one (the step's)."""
        self._check_ids([t for it in p.items for t in it.prompt + it.completion])
        if self.fast_generator is None:
            report = train_step(self.require(), p)
        else:
            report = train_step_fused(self.require(), p, self.graphs)
        return {**report, "memory": memory(reset_peaks=True)}

    def sft_step(self, p: SftStepParams) -> dict[str, Any]:
        self._check_ids([t for it in p.items for t in it.prompt + it.completion])
        return sft_step(self.require(), p)

    def save(self, p: SaveParams) -> dict[str, Any]:
        trainer = self.require()
        assert self.generator is not None
        files = save(trainer, self.generator, Path(p.path), p.format)
        return {"path": p.path, "files": files}

    def load_state(self, p: LoadStateParams) -> dict[str, Any]:
        trainer = self.require()
        assert self.generator is not None
        return {"step": load_state(trainer, self.generator, Path(p.path))}

    def _check_ids(self, ids: list[int]) -> None:
        vocab = self.loaded.causal_lm.config.vocab_size
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise EngineError("bad_request", f"token id {bad} is outside the vocabulary (0..{vocab - 1})")


def _rows(values: torch.Tensor, lengths: list[int]) -> list[list[float]]:
    return [row[:n] for row, n in zip(values.tolist(), lengths)]


def memory(reset_peaks: bool = False) -> dict[str, Any]:
    """GPU memory in bytes when there is a GPU, else {}: tensors allocated now and at the peak,
    what PyTorch's caching allocator holds now and held at the peak (cached blocks and CUDA
    graphs' pools too: what a smaller GPU would need), free and total. The peaks count from the
    last `reset_peaks` (each `train_step` report resets them after reading them)."""
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    report = {
        "allocated": torch.cuda.memory_allocated(),
        "peak": torch.cuda.max_memory_allocated(),
        "reserved": torch.cuda.memory_reserved(),
        "peak_reserved": torch.cuda.max_memory_reserved(),
        "free": free,
        "total": total,
    }
    if reset_peaks:
        torch.cuda.reset_peak_memory_stats()
    return report
