"""Fast paths for gpt-oss (issue 7), selected with `load.fast`; the plain modules stay the reference.

- `forward.py`: the gpt-oss decoder as plain functions over the transformers modules' weights,
  with a static KV cache and grouped GEMMs for the experts (PEFT's LoRA layers are called as
  they are, so adapters work unchanged).
- `generation.py`: prefill once, then one decode step per token replayed from a CUDA graph;
  sampling on the GPU, logits only for the last position.
- `training.py`: the GRPO step with all micro-batches in one forward and backward (the same
  loss and gradient as the plain step, which runs one forward and backward per micro-batch).
- `mxfp4_experts.py`: experts kept packed in MXFP4 on the GPU and dequantized layer by layer
  on the fly, forward and backward to the input.
"""
