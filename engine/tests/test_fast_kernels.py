"""The Triton expert kernels against plain per-expert matmuls, run by Triton's CPU interpreter.

The interpreter must be chosen before triton is first imported, so the checks run in a child
Python (this file as a script) with `TRITON_INTERPRET=1`. The same kernels run compiled on the
GPU, where bench/engine/bench_step.py checks them again at gpt-oss-20b's shapes before timing.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch
from helpers import rel_err


def per_expert(x: torch.Tensor, counts: list[int], weights: torch.Tensor) -> torch.Tensor:
    """Rows of x grouped by expert (in order, `counts` each) times `weights[e]`."""
    return torch.cat([part @ w for part, w in zip(x.split(counts), weights)])


def check(counts: list[int]) -> None:
    """The products, with their programs taking an expert's rows each and taking a row tile each
    (`ROW_TILES`), with x's columns split into evens and odds first (`SPLIT_X`), and with the
    weights as the dots' left operand (`W_AS_A`), against per-expert matmuls."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize
    from rl2048_engine.mxfp4 import quantize_mxfp4

    gen = torch.Generator().manual_seed(sum(counts))
    experts, k, n = len(counts), 96, 80  # neither a multiple of the column tiles
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    x = torch.randn(sum(counts), k, generator=gen)
    dense = torch.randn(experts, k, n, generator=gen)
    scale = torch.logspace(-2, 1, k)  # scales that differ between the 32-column blocks
    blocks, scales = quantize_mxfp4(torch.randn(experts, n, k, generator=gen) * scale)
    weight = dequantize(blocks, scales, torch.float32)  # [E, n, k]
    dy = torch.randn(sum(counts), n, generator=gen)

    for row_tiles, split_x, w_as_a in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)):
        for key in [key for key in kernels.TILES if key[0] in ("dense", "mx", "mx_t")]:
            kernels.TILES[key] = {**kernels.TILES[key], "ROW_TILES": row_tiles}
        for key in [key for key in kernels.TILES if key[0] == "mx"]:
            kernels.TILES[key] = {**kernels.TILES[key], "SPLIT_X": split_x, "W_AS_A": w_as_a}
        got = kernels.grouped_linear(x, offsets, weight=dense)
        assert torch.allclose(got, per_expert(x, counts, dense), rtol=1e-4, atol=1e-4), f"dense {row_tiles}"
        got = kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales)
        want = per_expert(x, counts, weight.transpose(1, 2))
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), f"mxfp4 {row_tiles} {split_x} {w_as_a}"
        got = kernels.grouped_linear_t(dy, offsets, blocks, scales)
        assert torch.allclose(got, per_expert(dy, counts, weight), rtol=1e-4, atol=1e-4), f"transposed {row_tiles}"

    chosen = torch.tensor([3, 0])
    assert torch.equal(kernels.dequantize_experts(blocks, scales, chosen, torch.float32), weight[chosen]), "dequantize"


def dequantize_at_the_edges(device: str) -> tuple[torch.Tensor, torch.Generator]:
    """Every byte, and scales at and past the ends of the range the kernels build exactly (2..252):
    the ones past it (e8m0's NaN, 255, included) are taken as 2 or 252; `dequantize_experts` must
    give the PyTorch table's bits. K = 160: 5 scale groups, not a multiple of the tiles. Returns
    the blocks, `[2, 128, 5, 16]` on `device`, and the generator, for the products that follow."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize

    gen = torch.Generator().manual_seed(0)
    experts, n, k = 2, 128, 160
    blocks = torch.arange(experts * n * k // 2).remainder(256).to(torch.uint8).reshape(experts, n, k // 32, 16)
    edges = torch.tensor([0, 1, 2, 3, 120, 127, 251, 252, 253, 254, 255], dtype=torch.uint8)
    scales = edges[torch.randint(0, len(edges), (experts, n, k // 32), generator=gen)]
    blocks, scales = blocks.to(device), scales.to(device)
    for dtype in (torch.float32, torch.bfloat16):
        got = kernels.dequantize_experts(blocks, scales, torch.tensor([1, 0], device=device), dtype)
        assert torch.equal(got, dequantize(blocks, scales.clamp(2, 252), dtype)[[1, 0]]), f"dequantize {dtype}"
    return blocks, gen


def check_edges() -> None:
    """`dequantize_at_the_edges` in the interpreter (bit construction), then the products on the
    same bytes in float32."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize

    blocks, gen = dequantize_at_the_edges("cpu")
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    scales = torch.randint(112, 129, (experts, n, k // 32), generator=gen, dtype=torch.uint8)  # |w| <= 12
    weight = dequantize(blocks, scales, torch.float32)
    counts = [5, 7]
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    x = torch.randn(sum(counts), k, generator=gen)
    got = kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales)
    assert torch.allclose(got, per_expert(x, counts, weight.transpose(1, 2)), rtol=1e-4, atol=1e-4), "mxfp4 bytes"
    dy = torch.randn(sum(counts), n, generator=gen)
    got = kernels.grouped_linear_t(dy, offsets, blocks, scales)
    assert torch.allclose(got, per_expert(dy, counts, weight), rtol=1e-4, atol=1e-4), "mxfp4 bytes transposed"


def check_compiled() -> None:
    """The kernels compiled for the GPU, where they unpack by byte tables (`_e2m1_pairs`):
    `dequantize_at_the_edges`, then the products (bf16, as decode runs them) within bf16
    rounding of dequantize + matmul."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize

    blocks, gen = dequantize_at_the_edges("cuda")
    experts, n, k = blocks.shape[0], blocks.shape[1], blocks.shape[2] * 32
    scales = torch.randint(112, 129, (experts, n, k // 32), generator=gen, dtype=torch.uint8).cuda()
    weight = dequantize(blocks, scales, torch.float32)
    counts = [5, 7]
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32).cuda()
    x = torch.randn(sum(counts), k, generator=gen).cuda().bfloat16()
    dy = torch.randn(sum(counts), n, generator=gen).cuda().bfloat16()
    got = kernels.grouped_linear(x, offsets, blocks=blocks, scales=scales)
    want = per_expert(x.float(), counts, weight.transpose(1, 2))
    assert rel_err(got, want) < 1e-2, f"mxfp4 product: {rel_err(got, want)}"
    got, want = kernels.grouped_linear_t(dy, offsets, blocks, scales), per_expert(dy.float(), counts, weight)
    assert rel_err(got, want) < 1e-2, f"mxfp4 transposed product: {rel_err(got, want)}"


def check_f16(device: str) -> None:
    """The MXFP4 product with x in f16 (the fp8 path, `_mx_tile_f16`) on `device`: scales across
    e8m0's range (30..220) that differ by up to 14 binades in a row's loop step (4 groups) give
    dequantize + matmul in float32; a group more than 14 binades below its row's largest in the
    step is dropped (zero). K = 288: 9 groups, the last step partial."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize

    gen = torch.Generator().manual_seed(1)
    counts, n, k = [5, 0, 7], 80, 288
    experts = len(counts)
    blocks = torch.randint(0, 256, (experts, n, k // 32, 16), generator=gen, dtype=torch.uint8)
    top = torch.randint(30, 221, (experts, n, 1), generator=gen)
    scales = (top - torch.randint(0, 15, (experts, n, k // 32), generator=gen)).to(torch.uint8)
    # Rows 0 and 1 of expert 0: only group 1 has nonzero codes, 15 and 14 binades below the
    # step's largest scale: the first is dropped, the second kept.
    blocks[0, :2, [0, 2, 3, 4, 5, 6, 7, 8]] = 0
    scales[0, 0, 1], scales[0, 1, 1] = scales[0, 0, :4].max() - 15, scales[0, 1, :4].max() - 14
    kept = dequantize(blocks, scales, torch.float32)
    assert kept[0, 0].abs().sum() > 0 and kept[0, 1].abs().sum() > 0
    kept[0, 0] = 0
    x = torch.randn(sum(counts), k, generator=gen).half()
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    args = [t.to(device) for t in (x, offsets, blocks, scales)]
    got = kernels.grouped_linear(args[0], args[1], blocks=args[2], scales=args[3], out_dtype=torch.float32).cpu()
    want = per_expert(x.float(), counts, kept.transpose(1, 2))
    bound = per_expert(x.float().abs(), counts, kept.abs().transpose(1, 2))  # float32 rounding of the sums
    assert ((got - want).abs() <= 1e-5 * bound).all(), "mxfp4 product, x in f16"
    assert (got[:5, 1] != 0).all(), "a group 14 binades below its step's largest is kept"


def check_gemv(device: str) -> None:
    """The MXFP4 product with x in f16 on the CUDA cores (`_mx_gemv_kernel`: at most
    `GEMV_ROWS_PER_EXPERT` rows an expert on average) on `device`: scales over e8m0's range but its
    largest 7 (0..248), K = 1056 (33 groups: a full 1024-column step and a partial one), an expert
    with no rows; x followed in memory by infinities. The group sums in f16 round to 2^-11 of their
    magnitude: within 2^-8 of the sums of |x w|; float32 otherwise (the interpreter: 1e-5). Then the
    same blocks 4 bytes past a 16-byte boundary, which `grouped_linear` gives the tensor-core
    kernel instead (`test_cuda_core_kernel_gives_each_thread_whole_scale_groups`)."""
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.fast.mxfp4_experts import dequantize

    gen = torch.Generator().manual_seed(2)
    counts, n, k = [1, 0, 2, 1, 3, 1], 80, 1056
    experts = len(counts)
    assert sum(counts) <= kernels.GEMV_ROWS_PER_EXPERT * experts
    blocks = torch.randint(0, 256, (experts, n, k // 32, 16), generator=gen, dtype=torch.uint8)
    scales = torch.randint(0, 249, (experts, n, k // 32), generator=gen, dtype=torch.uint8)
    x = torch.randn(sum(counts), k, generator=gen).half()
    weight = dequantize(blocks, scales, torch.float64)  # exact: e8m0 spans 2^-127 .. 2^127
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    # x's rows followed by infinities in memory: what the kernel reads past them would show
    padded = torch.full((x.shape[0] + 1, k), float("inf"), dtype=x.dtype, device=device)
    padded[:-1] = x.to(device)
    # and the blocks again 4 bytes past a 16-byte boundary: not for this kernel (`grouped_linear`)
    shifted = torch.empty(blocks.numel() + 4, dtype=torch.uint8, device=device)[4:].view(blocks.shape)
    shifted.copy_(blocks)
    want = per_expert(x.double(), counts, weight.transpose(1, 2))
    bound = per_expert(x.double().abs(), counts, weight.abs().transpose(1, 2))
    for packed in (blocks.to(device), shifted):  # the other kernel rounds x w to f16 (2^-11)
        tol = 2.0**-8 if device == "cuda" or packed is shifted else 1e-5
        got = kernels.grouped_linear(
            padded[:-1], offsets.to(device), blocks=packed, scales=scales.to(device), out_dtype=torch.float32
        ).cpu()
        assert ((got.double() - want).abs() <= tol * bound).all(), f"mxfp4 product ({device}, shifted {packed is shifted})"


def check_attention() -> None:
    """`forward.attention` for one new token with the decode kernel against its PyTorch path: 8
    query heads on 2 kv heads, 70 cache slots (not a multiple of the kernel's 64), a row with
    left padding, and a sliding window."""
    from rl2048_engine.fast import decode_attention  # noqa: F401  (registers the op)
    from rl2048_engine.fast.forward import Dims, LayerTensors, Proj, attention

    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    batch, hidden, heads, kv_heads, dim, slots, slot = 2, 32, 8, 2, 16, 70, 50
    proj = lambda n_in, n_out: Proj(rand(n_out, n_in) / n_in**0.5, rand(n_out))  # noqa: E731
    qkv = proj(hidden, (heads + 2 * kv_heads) * dim)._replace(sizes=(heads * dim, kv_heads * dim, kv_heads * dim))
    t = LayerTensors(rand(hidden), qkv, proj(heads * dim, hidden), rand(heads), rand(hidden), proj(hidden, 4))
    d = Dims(heads, kv_heads, dim, 1e-5, dim**-0.5, 2, 4)
    x, cos, sin = rand(batch, 1, hidden), rand(batch, 1, dim // 2), rand(batch, 1, dim // 2)
    keys, values = rand(batch, kv_heads, slots, dim), rand(batch, kv_heads, slots, dim)
    j = torch.arange(slots)
    for window in (slots, 20):
        seen = (j <= slot) & (slot - j < window) & (j >= torch.tensor([0, 30]).view(-1, 1))  # row 1: 30 pads
        mask = torch.where(seen, 0.0, float("-inf")).view(batch, 1, slots)
        outs = []
        for kernel in (False, True):
            k, v = keys.clone(), values.clone()
            outs.append(attention(x, t, d._replace(decode_kernels=kernel), cos, sin, k, v, torch.tensor([slot]), mask))
        assert torch.allclose(outs[1], outs[0], rtol=1e-4, atol=1e-5), f"decode attention, window {window}"


def check_routing() -> None:
    """The decode routing kernel against `top_k` and `route`: gpt-oss-20b's 8 tokens x 32 experts
    (top 4), and sizes that are not powers of two."""
    from rl2048_engine.fast.decode_routing import route_top_k
    from rl2048_engine.fast.forward import Routing, route, top_k

    gen = torch.Generator().manual_seed(0)
    for tokens, experts, k in ((8, 32, 4), (3, 4, 2), (5, 6, 3), (64, 32, 4)):
        logits = torch.randn(tokens, experts, generator=gen)
        top, chosen = top_k(logits, k)
        want = route(chosen, torch.softmax(top, dim=-1), experts)
        got = Routing(*route_top_k(logits, k))
        for name in ("token", "expert", "offsets", "inverse"):
            assert torch.equal(getattr(got, name), getattr(want, name)), f"routing {name} {tokens}x{experts}"
        assert torch.allclose(got.weight, want.weight, rtol=1e-5, atol=1e-6), f"routing weight {tokens}x{experts}"


def check_sampler(device: str) -> None:
    """The fused sampler against `log_softmax` (logprobs, greedy ids) and against the softmax it
    draws from (how often each token comes out over many steps); same seed and step, same token."""
    from rl2048_engine.fast import sampler

    gen = torch.Generator().manual_seed(0)
    chunk = sampler.CHUNK if device == "cuda" else 64  # the interpreter is slow: small chunks
    rows, vocab = 3, 2 * chunk + 37  # three chunks, the last one partly past the vocabulary
    logits = (torch.randn(rows, vocab, generator=gen) * 2).to(device)
    logits[1, 5] = logits[2, vocab - 1] = 40.0  # rows 1 and 2 pick these tokens almost surely

    def one(value: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.tensor([value], dtype=dtype, device=device)

    ids, logprobs = sampler.sample(logits, one(1.0), one(0.0), one(0, torch.long), one(0, torch.long), chunk)  # greedy
    want = torch.log_softmax(logits, dim=-1)
    assert torch.equal(ids, logits.argmax(-1)), "greedy ids"
    assert torch.allclose(logprobs, want.gather(-1, ids.unsqueeze(-1)).squeeze(-1), atol=1e-5), "greedy logprobs"

    tempered = torch.log_softmax(logits / 0.7, dim=-1)
    draws = []
    for step in range(20):
        ids, logprobs = sampler.sample(logits, one(1 / 0.7), one(1.0), one(7, torch.long), one(step, torch.long), chunk)
        assert torch.allclose(logprobs, tempered.gather(-1, ids.unsqueeze(-1)).squeeze(-1), atol=1e-5), "logprobs"
        draws.append(ids)
    again, _ = sampler.sample(logits, one(1 / 0.7), one(1.0), one(7, torch.long), one(0, torch.long), chunk)
    assert torch.equal(again, draws[0]), "same seed and step, same tokens"
    assert len({tuple(d.tolist()) for d in draws}) > 1, "another step, other tokens"
    draws_ = torch.stack(draws).cpu()
    assert (draws_[:, 1] == 5).all() and (draws_[:, 2] == vocab - 1).all(), "near-certain tokens"
    # Many rows of logits that put 0.5, 0.3 and 0.2 on three tokens, one in each chunk: each row
    # draws from its own random numbers.
    rows = 400 if device == "cpu" else 20000
    tokens = [3, chunk + 1, vocab - 2]
    small = torch.full((rows, vocab), -1e4, device=device)
    small[:, tokens] = torch.tensor([0.5, 0.3, 0.2], device=device).log()
    ids, _ = sampler.sample(small, one(1.0), one(1.0), one(11, torch.long), one(0, torch.long), chunk)
    share = torch.stack([(ids == t).float().mean() for t in tokens]).cpu()
    bound = 4 * (0.25 / rows) ** 0.5  # four standard deviations at worst
    assert (share - torch.tensor([0.5, 0.3, 0.2])).abs().max() < bound, f"shares {share.tolist()}"


def in_interpreter(*args: str) -> None:
    """Run this file with `args` in a child Python under Triton's CPU interpreter."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    args_ = [sys.executable, __file__, *args]
    done = subprocess.run(args_, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
needs_fp8_gpu = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
    reason="needs a GPU that converts fp8 (the compiled kernels)",
)


# Expert 1 gets no rows (its program must stop at once); in the other cases experts average
# more than 16 rows, so the kernels take their many-row tiles (128 rows; "uneven": one expert
# has three tiles of them, the last partial, and the others a few rows).
@needs_triton
@pytest.mark.parametrize(
    "counts", [[3, 0, 5, 20], [70, 0, 9, 33], [300, 0, 2, 1]], ids=["decode", "prefill", "uneven"]
)
def test_kernels_match_per_expert_matmuls(counts: list[int]) -> None:
    in_interpreter(*map(str, counts))


@needs_triton
def test_mxfp4_unpacking_at_the_edges() -> None:
    in_interpreter("edges")


def compile_for_hopper(
    kernel: object, pointers: dict[str, str], constants: dict[str, object], aligned: bool = False, **options: int
) -> object:
    """Compile `kernel` for sm_90 (no GPU needed: Triton's compiler and ptxas); the compiled
    kernel (`.metadata.shared`: shared memory in bytes; `.asm["ttgir"]`: the layouts). Every
    argument not in `pointers` or `constants` is an int32. `aligned`: the pointers 16-byte aligned,
    as the JIT specializes them for tensors whose data starts at a multiple of 16 bytes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names  # type: ignore[attr-defined]
    signature = {n: pointers.get(n, "constexpr" if n in constants else "i32") for n in names}
    constexprs = {(names.index(n),): v for n, v in constants.items()}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in pointers} if aligned else None
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


@needs_triton
@pytest.mark.skipif(importlib.util.find_spec("triton.backends.nvidia") is None, reason="no Triton CUDA backend")
@pytest.mark.parametrize("row_tiles, split_x, w_as_a", [(0, 0, 0), (1, 0, 0), (0, 1, 1)])
def test_many_row_kernels_compile_for_hopper(
    row_tiles: int, split_x: int, w_as_a: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interpreter checks the math, not that the kernels compile: here the many-row products
    # (bf16 rows, as prefill and training run them) and the decode product's fp8 path compile
    # for sm_90 at gpt-oss-20b's shapes, with either way of giving programs their rows, and x
    # split into evens and odds with the weights as the left operand, or not.
    from rl2048_engine.fast import moe_kernels as kernels

    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when it is unset
    mx = {"out_ptr": "*bf16", "offsets_ptr": "*i32", "scales_ptr": "*u8"}
    shape = {"K": 2880, "N": 5760, "LUT": True, "EXPERTS_P2": 32, "ROW_TILES": row_tiles}
    for rows, x in (("many", "*bf16"), ("decode", "*fp16")):
        tiles = {**kernels.TILES["mx_f16" if x == "*fp16" else "mx", rows]}
        options = {"num_warps": tiles.pop("num_warps"), "num_stages": tiles.pop("num_stages")}
        pointers = {**mx, "x_ptr": x, "w_ptr": "*u8"}
        constants = {**shape, **tiles, "MX": True, "F16": x == "*fp16", "SPLIT_X": split_x, "W_AS_A": w_as_a}
        assert compile_for_hopper(kernels._grouped_kernel, pointers, constants, **options).metadata.shared > 0
    tiles = {**kernels.TILES["mx_t", "many"]}
    options = {"num_warps": tiles.pop("num_warps"), "num_stages": tiles.pop("num_stages")}
    pointers = {**mx, "dy_ptr": "*bf16", "blocks_ptr": "*u8"}
    assert compile_for_hopper(kernels._grouped_mx_t_kernel, pointers, {**shape, **tiles}, **options).metadata.shared > 0


def asm_elements_per_thread(ttgir: str) -> tuple[list[int], list[int]]:
    """`sizePerThread` and `order` of the layout of the first inline-asm call's operands in `ttgir`."""
    import re

    call = next(line for line in ttgir.splitlines() if "tt.elementwise_inline_asm" in line)
    name = re.search(r"tensor<[0-9x]+x\w+, (#\w+)>", call).group(1)  # type: ignore[union-attr]
    layout = re.search(rf"^{name} = .*sizePerThread = \[([0-9, ]+)\].*order = \[([0-9, ]+)\]", ttgir, re.M)
    assert layout, f"no layout {name}"
    return [int(v) for v in layout.group(1).split(",")], [int(v) for v in layout.group(2).split(",")]


@needs_triton
def test_pdl_is_taken_only_when_enabled_for_that_kernel_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from rl2048_engine.fast import pdl

    cpu = torch.device("cpu")
    assert not pdl.ENABLED and pdl.inductor_options() == {}  # off by default
    monkeypatch.setattr(pdl, "ENABLED", True)
    assert not pdl.on(cpu, "experts")  # never for the CPU (the interpreter has no griddepcontrol)
    import torch._inductor.config as inductor

    if hasattr(inductor.triton, "enable_pdl"):  # inductor's kernels: only when named too
        assert pdl.inductor_options() == {"triton.enable_pdl": True}
        monkeypatch.setattr(pdl, "KERNELS", {"experts"})
        assert pdl.inductor_options() == {}
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        hopper = torch.cuda.get_device_capability(gpu)[0] >= 9
        monkeypatch.setattr(pdl, "KERNELS", {"attention"})
        assert pdl.on(gpu, "attention") == hopper and not pdl.on(gpu, "experts")


@needs_triton
@pytest.mark.skipif(importlib.util.find_spec("triton.backends.nvidia") is None, reason="no Triton CUDA backend")
@pytest.mark.parametrize("launch", [0, 1])
def test_decode_kernels_wait_for_the_kernel_before_them(launch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # With programmatic dependent launch (`pdl.start`) a kernel may start while the one before it
    # still runs: compiled for sm_90, each of our decode-step kernels must wait for it
    # (`griddepcontrol.wait`) before its first load from global memory, and then let the next
    # one launch; without it, neither instruction is there.
    from rl2048_engine.fast import decode_attention, decode_routing
    from rl2048_engine.fast import moe_kernels as kernels

    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    gemv = kernels._tiles("mx_gemv", "decode")
    num_warps = gemv.pop("num_warps")
    cases = [
        (
            kernels._mx_gemv_kernel,
            {"x_ptr": "*i32", "out_ptr": "*bf16", "offsets_ptr": "*i32", "w_ptr": "*i32", "scales_ptr": "*u8"},
            {"K": 2880, "N": 5760, "ASM": True, **gemv},
            num_warps,
        ),
        (
            decode_routing._route_kernel,
            {"logits_ptr": "*bf16", "chosen_ptr": "*i32", "top_ptr": "*fp32", "token_ptr": "*i64",
             "expert_ptr": "*i64", "weight_ptr": "*bf16", "offsets_ptr": "*i32", "inverse_ptr": "*i64"},
            {"N": 8, "E": 32, "K": 4, "BLOCK_N": 8, "BLOCK_E": 32, "BLOCK_P": 32},
            4,
        ),
        (
            decode_attention._decode_attention_kernel,
            {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "mask_ptr": "*fp32", "sinks_ptr": "*bf16",
             "out_ptr": "*bf16", "scaling": "fp32"},
            {"T": 512, "KV": 8, "G": 8, "D": 64, "BLOCK_G": 16, "BLOCK_T": 64},
            4,
        ),
    ]  # fmt: skip
    for kernel, pointers, constants, warps in cases:
        compiled = compile_for_hopper(kernel, pointers, {**constants, "PDL": launch}, num_warps=warps, launch_pdl=launch)
        ptx = compiled.asm["ptx"]  # type: ignore[attr-defined]
        name = kernel.fn.__name__  # type: ignore[attr-defined]
        if not launch:
            assert "griddepcontrol" not in ptx, name
            continue
        assert compiled.metadata.launch_pdl, name  # type: ignore[attr-defined]
        wait, load = ptx.find("griddepcontrol.wait"), ptx.find("ld.global")
        assert 0 <= wait < load, (name, wait, load)
        assert ptx.find("griddepcontrol.launch_dependents") > wait, name


@needs_triton
@pytest.mark.skipif(importlib.util.find_spec("triton.backends.nvidia") is None, reason="no Triton CUDA backend")
@pytest.mark.parametrize("k_stages, x_pairs", [(1, 0), (2, 0), (1, 1)])
def test_cuda_core_kernel_gives_each_thread_whole_scale_groups(
    k_stages: int, x_pairs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `_gemv_group`'s assembly takes 4 elements (its pack) as the 4 words of one weight row's
    # 32-column group. That holds only if Triton lays each thread's codes out 4 consecutive words
    # along a row, which it does for 16-byte loads, that is for weights whose data is 16-byte
    # aligned (the JIT specializes on it); unaligned, it gives each thread single words of 4 rows,
    # and the product would be wrong: `grouped_linear` sends such weights to the other kernel.
    # With the column loop pipelined (`K_STAGES`) too, and with x's pairs permuted (`X_PAIRS`: its
    # assembly passes ptxas).
    from rl2048_engine.fast import moe_kernels as kernels

    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    tiles = {**kernels.TILES["mx_gemv", "decode"]}
    pointers = {"x_ptr": "*i32", "out_ptr": "*bf16", "offsets_ptr": "*i32", "w_ptr": "*i32", "scales_ptr": "*u8"}
    constants = {"K": 2880, "N": 5760, "ASM": True, **tiles, "K_STAGES": k_stages, "X_PAIRS": x_pairs}
    num_warps = constants.pop("num_warps")
    compiled = compile_for_hopper(kernels._mx_gemv_kernel, pointers, constants, aligned=True, num_warps=num_warps)
    per_thread, order = asm_elements_per_thread(compiled.asm["ttgir"])  # type: ignore[attr-defined]
    assert order[0] == 1 and per_thread[1] % 4 == 0, (per_thread, order)


@pytest.mark.gpu(reason="needs a GPU (the compiled kernels)")
@needs_triton
def test_compiled_kernels_unpack_exactly_on_the_gpu() -> None:
    check_compiled()


@needs_triton
def test_mxfp4_product_through_fp8() -> None:
    in_interpreter("f16")


@pytest.mark.gpu
@needs_triton
@needs_fp8_gpu
def test_compiled_mxfp4_product_through_fp8_on_the_gpu() -> None:
    check_f16("cuda")


@needs_triton
def test_unpacking_assembly_read_on_the_cpu() -> None:
    # The MXFP4 unpacking's assembly (tests/ptx.py reads it) on every byte, 4 a register as
    # Triton packs them: `_e2m1_pairs` gives each nibble's value in bf16 (2 a register, low
    # nibbles in the first two registers, high in the last two); `_e4m3_pairs` its e4m3 byte,
    # the value times 2^-6 (low nibbles' bytes in the first register).
    import ptx
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.mxfp4 import FP4_VALUES

    for word in range(64):
        bytes_ = [4 * word + i for i in range(4)]
        packed = sum(b << (8 * i) for i, b in enumerate(bytes_))
        out = ptx.run(kernels.E2M1_PAIRS.value, [0, 0, 0, 0, packed], b"")
        values = [ptx.bf16(r >> (16 * h)) for r in out[:4] for h in (0, 1)]
        want = [FP4_VALUES[b & 15] for b in bytes_] + [FP4_VALUES[b >> 4] for b in bytes_]
        assert values == want and [math.copysign(1, v) for v in values] == [math.copysign(1, v) for v in want], word
        out = ptx.run(kernels.E4M3_PAIRS.value, [0, 0, packed], b"")
        e4m3 = [ptx.e4m3(r >> (8 * i)) * 64 for r in out[:2] for i in range(4)]
        assert e4m3 == want, word


@needs_triton
@pytest.mark.parametrize("x_rows, x_pairs", [(1, False), (2, False), (1, True), (2, True)])
def test_cuda_core_assembly_read_on_the_cpu(x_rows: int, x_pairs: bool) -> None:
    # The CUDA-core product's assembly (`_gemv_group_asm`), read instruction by instruction by
    # tests/ptx.py, on one weight row's 32-column group: each x row's accumulator gains the group's
    # products times its scale (the sum in f16: within 2^-8 of the sum of |products|), the other
    # three accumulators pass through. Permuting x's pairs (`x_pairs`) or the codes' bytes wrongly,
    # or pairing a code with the wrong x column, fails it; the GPU runs the same text.
    import ptx
    from rl2048_engine.fast import moe_kernels as kernels
    from rl2048_engine.mxfp4 import FP4_VALUES

    asm = kernels._gemv_group_asm(x_rows, x_pairs)
    gen = torch.Generator().manual_seed(x_rows)
    e2m1 = torch.tensor(FP4_VALUES, dtype=torch.float64)
    for scale in (127, 100, 148):
        codes = torch.randint(0, 16, (32,), generator=gen)  # column j's code; word c holds 8c .. 8c + 7
        words = [sum(int(codes[8 * c + i]) << (4 * i) for i in range(8)) for c in range(4)]
        x = torch.randn(x_rows, 32, generator=gen).half()
        memory = bytes([scale]) + bytes(15) + x.view(torch.uint8).numpy().tobytes()
        acc_in = [ptx.f32_bits(v) for v in torch.randn(4 * x_rows, generator=gen).tolist()]
        outs = 4 * x_rows
        operands = [0] * outs + acc_in + words + [0] * 4 + [a for r in range(x_rows) for a in [16 + 64 * r] * 4]
        got = ptx.run(asm, operands, memory)
        w = e2m1[codes] * 2.0 ** (scale - 127)
        for r in range(x_rows):
            want = ptx.f32(acc_in[4 * r]) + float((w * x[r].double()).sum())
            tol = 2.0**-8 * float((w * x[r].double()).abs().sum()) + 1e-6 * abs(want)
            assert abs(ptx.f32(got[4 * r]) - want) <= tol, (scale, r, ptx.f32(got[4 * r]), want)
            assert got[4 * r + 1 : 4 * r + 4] == acc_in[4 * r + 1 : 4 * r + 4]


@needs_triton
def test_mxfp4_product_on_the_cuda_cores() -> None:
    in_interpreter("gemv")


@pytest.mark.gpu
@needs_triton
@needs_fp8_gpu
@pytest.mark.parametrize("options", [{}, {"X_PAIRS": 1}, {"K_STAGES": 2}])
def test_compiled_mxfp4_product_on_the_cuda_cores_on_the_gpu(options: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # as `TILES` has it, and with each option of the kernel (x's pairs permuted in its assembly,
    # the column loop pipelined)
    from rl2048_engine.fast import moe_kernels as kernels

    monkeypatch.setitem(kernels.TILES, ("mx_gemv", "decode"), {**kernels.TILES["mx_gemv", "decode"], **options})
    check_gemv("cuda")


@needs_triton
def test_decode_attention_kernel_matches_the_pytorch_path() -> None:
    in_interpreter("attention")


@needs_triton
def test_decode_routing_kernel_matches_top_k_and_route() -> None:
    in_interpreter("routing")


@needs_triton
def test_fused_sampler_draws_from_the_softmax() -> None:
    in_interpreter("sampler")


@pytest.mark.gpu(reason="the compiled kernels")
def test_compiled_fused_sampler_draws_from_the_softmax_on_the_gpu() -> None:
    check_sampler("cuda")


if __name__ == "__main__":
    if sys.argv[1:] == ["sampler"]:
        check_sampler("cpu")
    elif sys.argv[1:] == ["edges"]:
        check_edges()
    elif sys.argv[1:] == ["attention"]:
        check_attention()
    elif sys.argv[1:] == ["routing"]:
        check_routing()
    elif sys.argv[1:] == ["f16"]:
        check_f16("cpu")
    elif sys.argv[1:] == ["gemv"]:
        check_gemv("cpu")
    else:
        check([int(c) for c in sys.argv[1:]])
