"""LoRA projections for scoring and training in the activations' dtype, as one autograd function.

PEFT computes a LoRA linear's adapters in the adapters' dtype (float32 here, for the optimizer):
the bf16 input is cast to float32, two float32 SIMT GEMMs run, the scaling is one more kernel,
the add promotes the bf16 result to float32 and a last kernel casts it back. That is about ten
kernels and a few float32 copies of the activations a projection, and as many again backward.

`LoraLinear` computes `x @ W.T + bias + scaling * (x @ A.T) @ B.T` with A and B cast to x's
dtype (`r x K`: tiny): three GEMMs forward, the LoRA one adding into the base result in its
epilogue; backward, five (the input's gradient adds its LoRA part the same way) and the
adapters' gradients are returned in their own dtype. It saves x and the rank-r `x @ A.T`, where
PEFT saves a float32 copy of x. The base weight and bias stay frozen (no gradient).

`use_fast_lora(model)` gives every plain LoRA linear (one active adapter, no dropout, no DoRA or
other variant) this forward; any other call falls back to PEFT's.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .forward import active_adapters


class LoraLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        a: torch.Tensor,
        b: torch.Tensor,
        scaling: float,
    ) -> torch.Tensor:  # type: ignore[override]
        a_, b_ = a.to(x.dtype), b.to(x.dtype)
        u = F.linear(x, a_)
        y = F.linear(x, weight, bias)
        y.view(-1, y.shape[-1]).addmm_(u.view(-1, u.shape[-1]), b_.t(), alpha=scaling)
        ctx.save_for_backward(x, weight, a_, b_, u)
        ctx.scaling = scaling
        ctx.dtypes = a.dtype, b.dtype
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight, a_, b_, u = ctx.saved_tensors
        s, (a_dtype, b_dtype) = ctx.scaling, ctx.dtypes
        g = grad.reshape(-1, grad.shape[-1])
        x2, u2 = x.reshape(-1, x.shape[-1]), u.reshape(-1, u.shape[-1])
        g_b = g @ b_  # [tokens, r]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(g_b, a_, alpha=s).view_as(x)
        grad_a = (g_b.t() @ x2).to(a_dtype) * s
        grad_b = (g.t() @ u2).to(b_dtype) * s
        return grad_x, None, None, grad_a, grad_b, None


def fast_lora_forward(layer: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """A PEFT LoRA linear's forward through `LoraLinear` when it is plain, PEFT's otherwise."""
    adapter = _plain_adapter(layer)
    if args or kwargs or adapter is None:
        return type(layer).forward(layer, x, *args, **kwargs)  # type: ignore[no-any-return]
    base = layer.base_layer
    a, b, scaling = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, float(layer.scaling[adapter])
    return LoraLinear.apply(x, base.weight, base.bias, a, b, scaling)  # type: ignore[no-any-return]


def _plain_adapter(layer: nn.Module) -> str | None:
    """The one active adapter's name when the layer computes plain LoRA on an `nn.Linear`."""
    active = active_adapters(layer)
    if len(active) != 1 or not isinstance(layer.base_layer, nn.Linear):
        return None
    name = active[0]
    plain = isinstance(layer.lora_dropout[name], nn.Identity) and name not in getattr(layer, "lora_variant", {})
    return name if plain and not layer.lora_bias.get(name, False) else None


def use_fast_lora(model: nn.Module, enabled: bool = True) -> int:
    """Give every PEFT LoRA linear of `model` the fast forward (or, not `enabled`, PEFT's back);
    returns how many layers."""
    from peft.tuners.lora import Linear as PeftLoraLinear

    layers = [m for m in model.modules() if isinstance(m, PeftLoraLinear)]
    for layer in layers:
        if enabled:
            layer.forward = types.MethodType(fast_lora_forward, layer)
        else:
            layer.__dict__.pop("forward", None)
    return len(layers)
