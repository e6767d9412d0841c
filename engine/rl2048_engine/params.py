"""The parameters of each RPC method, validated with pydantic (see engine/README.md).

Unknown fields are refused, so a typo in the caller fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TokenIds = list[int]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraParams(Strict):
    rank: int = Field(default=4, ge=1)
    alpha: int = 8
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    target_parameters: list[str] = []


class OptimParams(Strict):
    lr: float = Field(default=5e-5, ge=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = Field(default=1e-8, gt=0.0)
    eight_bit: bool = False
    schedule: Literal["linear", "constant"] = "linear"
    warmup_steps: int = Field(default=0, ge=0)
    total_steps: int = Field(default=1000, ge=1)
    max_grad_norm: float | None = Field(default=1.0, gt=0.0)


class LoadParams(Strict):
    model: str
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    device: str = "auto"
    seed: int = 0
    lora: LoraParams | None = None
    full_finetune: bool = False
    gradient_checkpointing: bool = False
    offload_embeddings: bool = False
    cpu_threads: int | None = Field(default=None, ge=1)
    optim: OptimParams = Field(default_factory=OptimParams)
    fast: bool = False
    """gpt-oss only: CUDA-graph generation and the fused GRPO step (fast/, engine/README.md)."""
    cuda_graphs: bool = True
    """With `fast` on CUDA: the GRPO update and the logprobs pass replayed from CUDA graphs
    (`fast.graphs.CudaGraphs`; the decode step always is)."""
    experts: Literal["bf16", "mxfp4"] = "bf16"
    """mxfp4: keep an MXFP4 folder's experts packed on the device (fast/mxfp4_experts.py)."""

    @model_validator(mode="after")
    def _one_way_to_train(self) -> LoadParams:
        if self.lora is not None and self.full_finetune:
            raise ValueError("lora and full_finetune exclude each other")
        return self


class GenerateParams(Strict):
    prompts: list[TokenIds] = Field(min_length=1)
    n: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    stop_token_ids: list[int] | None = None
    seed: int | None = None


class ScoredItem(Strict):
    prompt: TokenIds = Field(min_length=1)
    completion: TokenIds = Field(min_length=1)


class LogprobsParams(Strict):
    items: list[ScoredItem] = Field(min_length=1)
    reference: bool = False
    temperature: float = Field(default=1.0, gt=0.0)


class GrpoItem(ScoredItem):
    advantage: float
    old_logprobs: list[float] | None = None
    truncated: bool = False

    @model_validator(mode="after")
    def _old_matches(self) -> GrpoItem:
        if self.old_logprobs is not None and len(self.old_logprobs) != len(self.completion):
            raise ValueError("old_logprobs must have one value per completion token")
        return self


class LossParams(Strict):
    type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = "bnpo"
    epsilon: float = Field(default=0.2, ge=0.0)
    epsilon_high: float | None = None
    delta: float | None = Field(default=None, gt=1.0)
    beta: float = Field(default=0.0, ge=0.0)
    mask_truncated_completions: bool = False
    max_completion_length: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, gt=0.0)
    compute_kl: bool = False
    """Report `kl` even when beta == 0 (a reference forward more); with beta != 0 it is always
    computed, as TRL does, and at beta == 0 without this flag it is reported as 0."""

    def wants_kl(self) -> bool:
        return self.beta != 0.0 or self.compute_kl

    @model_validator(mode="after")
    def _dr_grpo_length(self) -> LossParams:
        if self.type == "dr_grpo" and self.max_completion_length is None:
            raise ValueError("loss type dr_grpo needs max_completion_length")
        return self


class TrainStepParams(Strict):
    items: list[GrpoItem] = Field(min_length=1)
    loss: LossParams = Field(default_factory=LossParams)
    gradient_accumulation_steps: int = Field(default=1, ge=1)


class SftStepParams(Strict):
    items: list[ScoredItem] = Field(min_length=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)


class SaveParams(Strict):
    path: str
    format: Literal["checkpoint", "lora", "merged_16bit", "mxfp4"]


class LoadStateParams(Strict):
    path: str


class NoParams(Strict):
    pass
