"""Programmatic dependent launch (PDL, GPUs of compute capability 9.0 and up) for the decode step.

A decode step of gpt-oss-20b is about 19 kernels a layer, replayed from a CUDA graph; each
starts only once the one before it has finished and the GPU has launched it. With PDL a kernel
is launched while the one before it still runs, and its first instruction (`griddepcontrol.wait`)
waits for that kernel's results, so the launch is hidden behind the work before it.

`ENABLED` turns it on for the kernels named in `KERNELS`: inductor's (`"inductor"`: its
`triton.enable_pdl` option, for the compiled layer functions of decode) and ours (`"routing"`,
`"attention"`, `"experts"`: the decode kernels, which take `PDL` and call `start` before they
read anything). Off. Measured on an H100 (2026-12-07, torch 2.11, bench/RESULTS.md): with
inductor's kernels the decode step took 2-4.3% less time but sampled other tokens than without
PDL (the same other tokens every time); with ours alone the tokens and logprobs were the same,
and so was the time (4.77-4.82 against 4.79 ms a token). Replayed on the same state, the decode
step with inductor's PDL gives the plain step's logits bit for bit, so the tokens part elsewhere
(the prefill or the token step's sampling); generate gained 1% there (1.035 against 1.043 s).
`bench/engine/explore_decode_gap.py --runs plain pdl pdl:inductor pdl:experts ...` compares them.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

ENABLED = False
KERNELS = {"inductor", "routing", "attention", "experts"}
"""Which kernels take PDL when it is `ENABLED` (to measure each alone)."""


def on(device: torch.device, kernel: str) -> bool:
    """Whether our `kernel` (`"routing"`, `"attention"` or `"experts"`) launched on `device` takes
    PDL: `ENABLED` and in `KERNELS`, compiled (not the interpreter) for a GPU of compute
    capability 9.0 or up."""
    return (
        ENABLED
        and kernel in KERNELS
        and device.type == "cuda"
        and os.environ.get("TRITON_INTERPRET") != "1"
        and torch.cuda.get_device_capability(device)[0] >= 9
    )


def launch_options(device: torch.device, kernel: str) -> dict[str, bool]:
    """Launch keywords of our `kernel` on `device`: its `PDL` constexpr (the wait in `start`) and
    Triton's `launch_pdl` (the early launch), always together, as `on` says."""
    enabled = on(device, kernel)
    return {"PDL": enabled, "launch_pdl": enabled}


def inductor_options() -> dict[str, bool]:
    """`torch.compile` options for inductor's kernels to take PDL (it checks the GPU itself), when
    `ENABLED` with `"inductor"` in `KERNELS`, where this PyTorch has the option."""
    import torch._inductor.config as inductor

    wanted = ENABLED and "inductor" in KERNELS
    return {"triton.enable_pdl": True} if wanted and hasattr(inductor.triton, "enable_pdl") else {}


@triton.jit
def start(PDL: tl.constexpr):  # type: ignore[no-untyped-def]
    """First in a kernel, with `PDL`: wait until the kernel before has finished and its writes are
    seen (any load may read them), then let the next kernel be launched. The GPU launches it once
    every program of this one has passed here or ended, that is once this kernel's last wave is
    placed; the next kernel's own `start` waits for this one's results."""
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
