"""The fused GRPO step against the plain one: same metrics, gradient norm and updated weights."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import ATTENTION_LORA

from rl2048_engine.engine import Engine
from rl2048_engine.fast.training import train_step_fused
from rl2048_engine.params import TrainStepParams
from rl2048_engine.training import train_step


def items(seed: int) -> list[dict]:
    rng = random.Random(seed)
    prompts = [[rng.randrange(2000) for _ in range(rng.randrange(4, 9))] for _ in range(3)]
    out = []
    for i in range(5):  # 5 items in 3 micro-batches: uneven parts, uneven lengths, 2 to a prompt
        completion = [rng.randrange(2000) for _ in range(rng.randrange(3, 12))]
        out.append(
            {
                "prompt": prompts[i // 2],
                "completion": completion,
                "advantage": rng.uniform(-1.5, 1.5),
                "old_logprobs": [rng.uniform(-9.0, -7.0) for _ in completion] if i % 2 else None,
                "truncated": i == 3,
            }
        )
    return out


def run(folder: Path, step: object, params: TrainStepParams, fast: bool = False) -> tuple[dict, dict[str, torch.Tensor]]:
    """`step` on a freshly loaded tiny model; `fast` loads it as the engine's fast mode does (the
    fused step then shares each prompt among its completions)."""
    engine = Engine()
    engine.load(
        engine.handlers["load"][0](model=str(folder), dtype="float32", device="cpu", seed=3, lora=ATTENTION_LORA, fast=fast)
    )
    trainer = engine.require()
    with torch.no_grad():  # nonzero LoRA B, so the reference differs from the policy
        for name, param in trainer.loaded.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    metrics = step(trainer, params)  # type: ignore[operator]
    weights = {n: p.detach().clone() for n, p in trainer.loaded.model.named_parameters() if p.requires_grad}
    return metrics, weights


@pytest.mark.parametrize(
    ("loss_type", "fast"), [("grpo", False), ("bnpo", False), ("dr_grpo", False), ("dapo", False), ("bnpo", True), ("dapo", True)]
)
def test_fused_step_matches_the_plain_step(tiny_folder: Path, loss_type: str, fast: bool) -> None:
    params = TrainStepParams.model_validate(
        {
            "items": items(seed=len(loss_type)),
            "loss": {
                "type": loss_type,
                "beta": 0.04,
                "epsilon_high": 0.28,
                "delta": 1.5,
                "mask_truncated_completions": True,
                "max_completion_length": 12,
            },
            "gradient_accumulation_steps": 3,
        }
    )
    plain, plain_weights = run(tiny_folder, train_step, params, fast)
    fused, fused_weights = run(tiny_folder, train_step_fused, params, fast)
    assert plain["grad_norm"] > 0 and plain["kl"] > 0
    for key in ("loss", "kl", "entropy", "grad_norm", "learning_rate", "step"):
        assert fused[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-7), key
    assert fused["clip_ratio"] == pytest.approx(plain["clip_ratio"], abs=1e-7)
    for name, value in plain_weights.items():
        assert torch.allclose(fused_weights[name], value, rtol=1e-4, atol=1e-6), name


def test_a_full_fine_tune_in_fast_mode_trains_every_weight_as_the_plain_step(tiny_folder: Path) -> None:
    # No LoRA: every weight trains, the experts' biases too (the fast experts' backward gives them
    # their gradient), and the reference is a frozen copy that runs the fast attention as well.
    params = TrainStepParams.model_validate({"items": items(seed=2), "loss": {"beta": 0.04}, "gradient_accumulation_steps": 2})

    def one_step(fast: bool) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        engine = Engine()
        load = dict(model=str(tiny_folder), dtype="float32", device="cpu", seed=3, full_finetune=True, fast=fast)
        engine.load(engine.handlers["load"][0](**load))
        trainer = engine.require()
        before = {n: p.detach().clone() for n, p in trainer.loaded.model.named_parameters()}
        metrics = (train_step_fused if fast else train_step)(trainer, params)
        return metrics, before, {n: p.detach().clone() for n, p in trainer.loaded.model.named_parameters()}

    plain, start, plain_weights = one_step(False)
    fast, _, fast_weights = one_step(True)
    for key in ("loss", "grad_norm"):
        assert fast[key] == pytest.approx(plain[key], rel=1e-5), key
    assert any("experts" in name and name.endswith("_bias") for name in plain_weights)
    for name, value in plain_weights.items():
        assert not torch.equal(value, start[name]), name
        assert torch.allclose(fast_weights[name], value, rtol=1e-5, atol=1e-7), name


def test_kl_needs_beta_or_compute_kl_and_never_changes_the_update(tiny_folder: Path) -> None:
    def params(**loss: object) -> TrainStepParams:
        return TrainStepParams.model_validate({"items": items(seed=9), "loss": loss, "gradient_accumulation_steps": 2})

    skipped, skipped_weights = run(tiny_folder, train_step_fused, params(beta=0.0))
    reported, reported_weights = run(tiny_folder, train_step_fused, params(beta=0.0, compute_kl=True))
    plain, _ = run(tiny_folder, train_step, params(beta=0.0, compute_kl=True))
    assert skipped["kl"] == 0.0 and reported["kl"] > 0
    assert reported["kl"] == pytest.approx(plain["kl"], rel=1e-4)
    assert skipped["loss"] == pytest.approx(reported["loss"], rel=1e-6)
    for name, value in reported_weights.items():
        assert torch.equal(skipped_weights[name], value), name


def test_compiled_layers_train_as_the_layers_do(tiny_folder: Path) -> None:
    # On CUDA the engine compiles the decoder layers (fast/training.py, `compile_layers`); here
    # through inductor's CPU backend, with activation checkpointing (the recompute runs compiled
    # too) and the reference forward (adapters off), against the same steps uncompiled.
    from rl2048_engine.fast.training import compile_layers

    params = TrainStepParams.model_validate(
        {"items": items(seed=4), "loss": {"beta": 0.04}, "gradient_accumulation_steps": 3}
    )

    def two_steps(compiled: bool) -> tuple[list[dict], dict[str, torch.Tensor]]:
        engine = Engine()
        load = dict(model=str(tiny_folder), dtype="float32", device="cpu", seed=3, lora=ATTENTION_LORA)
        engine.load(engine.handlers["load"][0](**load, fast=True, gradient_checkpointing=True))
        trainer = engine.require()
        causal_lm = trainer.loaded.causal_lm
        compile_layers(causal_lm, compiled)
        compile_layers(causal_lm, compiled)  # twice: the same as once
        layer = causal_lm.get_decoder().layers[0]
        forward = vars(layer).get("forward")
        assert (forward is not None) == compiled
        if compiled:  # transformers' forward of the layer, compiled
            assert forward._torchdynamo_orig_callable.__func__ is type(layer).forward
        metrics = [train_step_fused(trainer, params) for _ in range(2)]
        compile_layers(causal_lm, False)  # transformers' forward again
        assert "forward" not in vars(causal_lm.get_decoder().layers[0])
        return metrics, {n: p.detach().clone() for n, p in trainer.loaded.model.named_parameters() if p.requires_grad}

    eager, eager_weights = two_steps(False)
    compiled, compiled_weights = two_steps(True)
    assert eager[1]["grad_norm"] > 0 and eager[1]["kl"] > 0
    for got, want in zip(compiled, eager):
        for key in ("loss", "kl", "entropy", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key
    for name, value in eager_weights.items():
        assert torch.allclose(compiled_weights[name], value, rtol=1e-5, atol=1e-7), name


def test_our_experts_forward_matches_transformers(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rl2048_engine.fast import forward
    from rl2048_engine.loading import load_model
    from rl2048_engine.params import LoadParams

    causal_lm = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu")).causal_lm
    ids = torch.randint(0, 2000, (2, 30), generator=torch.Generator().manual_seed(0))

    def logits_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        embeds = causal_lm.get_input_embeddings()(ids).detach().requires_grad_()
        logits = causal_lm(inputs_embeds=embeds).logits
        logits.float().logsumexp(-1).sum().backward()
        assert embeds.grad is not None
        return logits.detach(), embeds.grad

    theirs = logits_and_grad()
    original, calls = forward.grouped_experts, []
    monkeypatch.setattr(forward, "grouped_experts", lambda *args: calls.append(1) or original(*args))
    forward.use_fast_experts(causal_lm)
    ours = logits_and_grad()
    assert len(calls) == causal_lm.config.num_hidden_layers  # ours ran, once a layer
    assert torch.allclose(ours[0], theirs[0], rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_expert_functions_backward_matches_autograd(compiled: bool) -> None:
    # Training runs the experts' activation and sum as autograd Functions with their backward
    # written out; on CUDA through torch.compile (dynamic shapes), here on the CPU eagerly and
    # through inductor's CPU backend. Against autograd of the plain functions.
    from rl2048_engine.fast.forward import EAGER, Activate, ExpertsSum, activate, compiled_functions, experts_sum, route

    gen = torch.Generator().manual_seed(0)
    tokens, hidden, inner, experts, top_k, limit = 7, 16, 24, 5, 2, 1.5  # a low limit: clamped values too
    chosen = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)])
    weights = torch.rand(tokens, top_k, generator=gen).softmax(-1)
    h, out = torch.randn(tokens * top_k, 2 * inner, generator=gen), torch.randn(tokens * top_k, hidden, generator=gen)
    biases = torch.randn(experts, 2 * inner, generator=gen), torch.randn(experts, hidden, generator=gen)
    fns = compiled_functions(dynamic=True) if compiled else EAGER

    def run(ours: bool) -> list[torch.Tensor]:
        leaves = [t.clone().requires_grad_() for t in (h, out, weights)]
        routing = route(chosen, leaves[2], experts)
        if ours:
            a = Activate.apply(leaves[0], biases[0], routing.expert, 1.702, limit, fns)
            y = ExpertsSum.apply(leaves[1], routing.weight, biases[1], routing, fns)
        else:
            a, y = (
                activate(leaves[0], biases[0], routing.expert, 1.702, limit),
                experts_sum(leaves[1], biases[1], routing),
            )
        total = (a * torch.linspace(-1, 1, a.shape[-1])).sum() + y.pow(2).sum()
        total.backward()
        return [total.detach(), *(leaf.grad for leaf in leaves)]  # type: ignore[misc]

    for got, want in zip(run(True), run(False)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_routing_by_comparison_matches_the_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    from rl2048_engine.fast import forward

    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 32, generator=gen)
    values, chosen = forward.top_k(logits, 4)
    want_values, want_chosen = torch.topk(logits, 4, dim=-1)
    assert torch.equal(chosen, want_chosen) and torch.equal(values, want_values)

    weights = values.softmax(-1)
    compared = forward.route(chosen, weights, 32)  # 160 pairs: by comparison
    monkeypatch.setattr(forward, "SORT_BY_COMPARING", 0)
    sorted_ = forward.route(chosen, weights, 32)
    for a, b in zip(compared, sorted_):
        assert torch.equal(a, b)
    # The order is by expert, stable, and `inverse` finds each (token, j) pair in it.
    assert torch.equal(sorted_.expert, chosen.reshape(-1).sort(stable=True).values)
    assert torch.equal(sorted_.expert[sorted_.inverse], chosen)
    assert torch.equal(sorted_.token[sorted_.inverse], torch.arange(40).unsqueeze(1).expand(-1, 4))


def test_fused_attention_with_sinks_matches_transformers_eager(tiny_folder: Path) -> None:
    from rl2048_engine.fast.attention import FAST_ATTENTION, use_fast_attention
    from rl2048_engine.loading import load_model
    from rl2048_engine.params import LoadParams

    causal_lm = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu")).causal_lm
    with torch.no_grad():  # sinks that matter (they start at zero)
        for layer in causal_lm.get_decoder().layers:
            layer.self_attn.sinks.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(layer.self_attn.layer_idx))
    causal_lm.get_decoder().layers[0].self_attn.sinks.requires_grad_(True)  # frozen when loaded; check its gradient
    ids = torch.randint(0, 2000, (2, 150), generator=torch.Generator().manual_seed(0))  # past the 128-token window
    mask = torch.ones_like(ids)
    mask[1, :40] = 0  # a left-padded row
    keep = mask.bool()

    def logits_and_grads() -> list[torch.Tensor]:
        embeds = causal_lm.get_input_embeddings()(ids).detach().requires_grad_()
        logits = causal_lm(inputs_embeds=embeds, attention_mask=mask).logits
        logits[keep].float().logsumexp(-1).sum().backward()
        sinks = causal_lm.get_decoder().layers[0].self_attn.sinks
        assert embeds.grad is not None and sinks.grad is not None
        out = [logits.detach()[keep], embeds.grad[keep], sinks.grad.clone()]
        sinks.grad = None
        return out

    eager = logits_and_grads()
    use_fast_attention(causal_lm)
    assert causal_lm.config._attn_implementation == FAST_ATTENTION
    for got, want in zip(logits_and_grads(), eager):
        assert torch.linalg.norm(got - want) / torch.linalg.norm(want) < 1e-5


def lora_model(folder: Path, dtype: str) -> tuple[Any, dict[str, torch.Tensor]]:
    from rl2048_engine.loading import load_model
    from rl2048_engine.params import LoadParams

    loaded = load_model(LoadParams(model=str(folder), dtype=dtype, device="cpu", lora=ATTENTION_LORA))
    lora = {n: p for n, p in loaded.model.named_parameters() if "lora_" in n}
    with torch.no_grad():  # nonzero B, so the adapters change the output and A gets a gradient
        for name, p in lora.items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    return loaded, lora


def test_fast_lora_matches_peft_forward_and_backward(tiny_folder: Path) -> None:
    from rl2048_engine.fast.lora import use_fast_lora

    loaded, lora = lora_model(tiny_folder, "float32")
    ids = torch.randint(0, 2000, (2, 40), generator=torch.Generator().manual_seed(0))

    def logits_and_grads() -> list[torch.Tensor]:
        embeds = loaded.causal_lm.get_input_embeddings()(ids).detach().requires_grad_()
        logits = loaded.model(inputs_embeds=embeds).logits
        logits.logsumexp(-1).sum().backward()
        assert embeds.grad is not None
        out = [logits.detach(), embeds.grad] + [p.grad.clone() for p in lora.values()]  # type: ignore[union-attr]
        loaded.model.zero_grad(set_to_none=True)
        return out

    peft = logits_and_grads()
    with loaded.model.disable_adapter():
        base = loaded.model(input_ids=ids).logits.detach()
    assert use_fast_lora(loaded.model) == 4 * loaded.causal_lm.config.num_hidden_layers
    for got, want in zip(logits_and_grads(), peft):
        assert torch.linalg.norm(got - want) / torch.linalg.norm(want) < 1e-5
    with loaded.model.disable_adapter():  # adapters off: the base model, as PEFT computes it
        assert torch.equal(loaded.model(input_ids=ids).logits.detach(), base)


def test_fast_lora_in_bf16_is_as_close_to_float32_math_as_peft(tiny_folder: Path) -> None:
    """One projection (through a whole model, bf16 rounding differences flip router choices)."""
    from rl2048_engine.fast.lora import fast_lora_forward

    loaded, _ = lora_model(tiny_folder, "bfloat16")
    layer = loaded.causal_lm.get_decoder().layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert a.dtype == torch.float32  # the adapters stay float32, the base is bf16
    x = torch.randn(80, a.shape[1], generator=torch.Generator().manual_seed(1)).bfloat16()

    def output_and_grads(forward: Any) -> list[torch.Tensor]:
        x_ = x.float().requires_grad_() if forward is None else x.clone().requires_grad_()
        if forward is None:  # float32 math
            base = layer.base_layer
            y = F.linear(x_, base.weight.float(), base.bias.float()) + (x_ @ a.T) @ b.T * layer.scaling["default"]
        else:
            y = forward(layer, x_)
        y.float().square().sum().backward()
        out = [y.detach().float(), x_.grad.float(), a.grad.clone(), b.grad.clone()]  # type: ignore[union-attr]
        a.grad, b.grad = None, None
        return out

    exact, peft, ours = output_and_grads(None), output_and_grads(type(layer).forward), output_and_grads(fast_lora_forward)
    rel = lambda got, want: float(torch.linalg.norm(got - want) / torch.linalg.norm(want))  # noqa: E731
    for e, p, o in zip(exact, peft, ours):
        assert rel(o, e) < max(2 * rel(p, e), 4e-3)


@pytest.mark.gpu(reason="waiting on the device is a CUDA matter")
@pytest.mark.parametrize("experts", ["bf16", "mxfp4"])
def test_fused_step_never_waits_on_the_device_between_forward_and_backward(
    tiny_folder: Path, tiny_mxfp4_folder: Path, experts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From the first decoder layer's forward to the optimizer, every call must only queue work:
    # a synchronizing call (a boolean index, a float() of a metric, a copy from the host) raises
    # under the "error" sync debug mode. Loaded as the seed preset loads (fast mode, checkpointing,
    # embeddings offloaded, beta 0). Before the first layer the step may wait, with nothing queued
    # behind: on its own copies from the host and on transformers' mask, which copies a scalar to
    # the device. (With beta != 0 the reference forward comes first, and the policy's mask then
    # waits for it.)
    from rl2048_engine.fast import training as fast_training
    from rl2048_engine.loading import load_model
    from rl2048_engine.optim import make_optimizer, make_scheduler
    from rl2048_engine.params import LoadParams, OptimParams
    from rl2048_engine.training import Trainer

    folder = tiny_mxfp4_folder if experts == "mxfp4" else tiny_folder
    load = LoadParams(
        model=str(folder),
        device="cuda",
        lora=ATTENTION_LORA,
        fast=True,
        experts=experts,  # type: ignore[arg-type]
        gradient_checkpointing=True,
        offload_embeddings=True,
    )
    loaded = load_model(load)
    optimizer, _ = make_optimizer(loaded.trainable, OptimParams(), loaded.device)
    trainer = Trainer(loaded, optimizer, make_scheduler(optimizer, OptimParams()), 1.0)
    params = TrainStepParams.model_validate(
        {"items": items(seed=4), "loss": {"beta": 0.0}, "gradient_accumulation_steps": 2}
    )
    train_step_fused(trainer, params)  # compiles, outside the check

    first_layer = loaded.causal_lm.get_decoder().layers[0]
    hook = first_layer.register_forward_pre_hook(lambda *_: torch.cuda.set_sync_debug_mode("error"))
    step = fast_training._optimizer_step

    def unchecked_step(*args: Any, **kwargs: Any) -> Any:
        torch.cuda.set_sync_debug_mode(0)
        return step(*args, **kwargs)

    monkeypatch.setattr(fast_training, "_optimizer_step", unchecked_step)
    try:
        metrics = train_step_fused(trainer, params)
    finally:
        torch.cuda.set_sync_debug_mode(0)
        hook.remove()
    assert metrics["grad_norm"] > 0


def seed_preset_engine(folder: Path, experts: str) -> Engine:
    """An engine loaded as the seed preset loads (fast mode, LoRA on the attention, checkpointing,
    embeddings offloaded) on the GPU, learning rate 0, with nonzero LoRA B (so that A gets a
    gradient and the reference differs from the policy)."""
    engine = Engine()
    engine.load(
        engine.handlers["load"][0](
            model=str(folder),
            device="cuda",
            seed=3,
            lora=ATTENTION_LORA,
            fast=True,
            experts=experts,
            gradient_checkpointing=True,
            offload_embeddings=True,
            optim={"lr": 0.0},
        )
    )
    with torch.no_grad():
        for name, param in engine.require().loaded.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    return engine


def random_ids(pairs_of_lengths: list[tuple[int, int]], seed: int) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    return [([rng.randrange(2000) for _ in range(p)], [rng.randrange(2000) for _ in range(c)]) for p, c in pairs_of_lengths]


@pytest.mark.gpu(reason="CUDA graphs")
@pytest.mark.parametrize("experts", ["bf16", "mxfp4"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_update_replayed_from_a_cuda_graph_matches_the_update_run_as_it_is(
    tiny_folder: Path, tiny_mxfp4_folder: Path, experts: str, beta: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Learning rate 0: every step starts from the same weights, so each step through the graphs
    # (warm-up, capture, replays with other inputs of the same shape, another shape in between)
    # must give the loss, the metrics and the gradients that fresh `CudaGraphs` give the same
    # items on their first, uncaptured step. With beta the reference forward is in the graph too.
    from rl2048_engine.fast import training as fast_training
    from rl2048_engine.fast.graphs import CudaGraphs

    engine = seed_preset_engine(tiny_mxfp4_folder if experts == "mxfp4" else tiny_folder, experts)
    trainer, graphs = engine.require(), engine.graphs
    assert graphs is not None
    grads: list[list[torch.Tensor]] = []
    step = fast_training._optimizer_step

    def keep_grads(trainer_: Any) -> Any:
        grads.append([p.grad.clone() for p in trainer_.loaded.trainable])  # type: ignore[union-attr]
        return step(trainer_)

    monkeypatch.setattr(fast_training, "_optimizer_step", keep_grads)

    def params(seed: int, longer: int = 0) -> TrainStepParams:
        # The lengths of `items(1)`, each completion `longer` tokens more (another padded shape:
        # prompts and completions are padded to 16 each); the ids and advantages from `seed`,
        # the completions of a prompt still sharing it.
        shaped = items(1)
        rng = random.Random(seed)
        fresh: dict[tuple[int, ...], list[int]] = {}
        for it in shaped:
            it["prompt"] = fresh.setdefault(tuple(it["prompt"]), [rng.randrange(2000) for _ in it["prompt"]])
            it["completion"] = [rng.randrange(2000) for _ in range(len(it["completion"]) + longer)]
            it["advantage"] = rng.uniform(-1.5, 1.5)
            if it["old_logprobs"] is not None:
                it["old_logprobs"] += [-8.0] * longer
        loss = {"beta": beta, "epsilon_high": 0.28, "delta": 1.5, "mask_truncated_completions": True}
        return TrainStepParams.model_validate({"items": shaped, "loss": loss, "gradient_accumulation_steps": 2})

    def as_it_is(p: TrainStepParams) -> tuple[dict, list[torch.Tensor]]:
        metrics = train_step_fused(trainer, p, CudaGraphs())  # a shape's first step: not captured
        return metrics, grads[-1]

    for seed, longer in [(1, 0), (1, 0), (2, 0), (3, 16), (4, 0)]:  # warm-up, capture, replay, other, replay
        p = params(seed, longer)
        got = train_step_fused(trainer, p, graphs)
        got_grads = grads[-1]
        want, want_grads = as_it_is(p)
        assert got["grad_norm"] > 0
        assert (got["kl"] > 0) == (beta > 0)
        for key in ("loss", "kl", "entropy", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=1e-3), (seed, key)
        assert got["clip_ratio"] == pytest.approx(want["clip_ratio"], abs=1e-6)
        for g, w in zip(got_grads, want_grads):
            assert torch.allclose(g, w, rtol=1e-3, atol=1e-6 * float(w.abs().max()))
    assert not graphs.failed and len(graphs.seen) == 2 and len(graphs.graphs) == 1


@pytest.mark.gpu(reason="CUDA graphs")
@pytest.mark.parametrize("experts", ["bf16", "mxfp4"])
def test_logprobs_replayed_from_a_cuda_graph_match_the_pass_run_as_it_is(
    tiny_folder: Path, tiny_mxfp4_folder: Path, experts: str
) -> None:
    # The engine's `logprobs` (policy and reference) through its graphs: warm-up, capture, a
    # replay with other ids of the same shape, another shape, a replay again; each call's rows
    # equal those of fresh `CudaGraphs`' first, uncaptured call (the same padded batch), cut to
    # each completion's length.
    from rl2048_engine.fast.graphs import CudaGraphs
    from rl2048_engine.fast.training import completion_logprobs

    engine = seed_preset_engine(tiny_mxfp4_folder if experts == "mxfp4" else tiny_folder, experts)
    loaded, graphs = engine.require().loaded, engine.graphs
    assert graphs is not None
    lengths = {1: [(30, 40), (30, 17), (25, 40)], 7: [(50, 9), (12, 60)]}
    for seed, shape in [(1, 1), (1, 1), (2, 1), (3, 7), (4, 1)]:
        pairs = random_ids(lengths[shape], seed)
        got = engine.logprobs(engine.handlers["logprobs"][0](
            items=[{"prompt": p, "completion": c} for p, c in pairs], temperature=0.7, reference=True
        ))
        policy, reference = completion_logprobs(loaded, pairs, 0.7, True, CudaGraphs())
        assert reference is not None
        for row, (_, completion) in enumerate(pairs):
            assert got["policy"][row] == pytest.approx(policy[row, : len(completion)].tolist(), abs=1e-5), seed
            assert got["reference"][row] == pytest.approx(reference[row, : len(completion)].tolist(), abs=1e-5), seed
        assert got["policy"] != got["reference"]
    assert not graphs.failed and len(graphs.seen) == 2 and len(graphs.graphs) == 1


def test_attention_masks_and_a_padded_batch_give_the_same_logprobs(tiny_folder: Path) -> None:
    # `attention_masks` (built on the device) against the masks transformers builds, and a batch
    # padded for CUDA graphs against the unpadded one: rows longer than the 128-token sliding
    # window, of different lengths (right padding).
    from rl2048_engine.fast.attention import attention_masks, use_fast_attention
    from rl2048_engine.loading import load_model
    from rl2048_engine.logprobs import make_batch, token_logprobs
    from rl2048_engine.params import LoadParams

    causal_lm = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu")).causal_lm
    pairs = [(list(range(10, 110)), list(range(200, 260))), ([7] * 30, [9] * 21)]
    batch = make_batch(pairs, torch.device("cpu"))
    assert attention_masks(causal_lm, batch) is None  # transformers' eager attention: its own masks
    with pytest.raises(ValueError, match="shared prompts"):
        attention_masks(causal_lm, make_batch(pairs, torch.device("cpu"), share_prompts=True))
    use_fast_attention(causal_lm)
    padded = make_batch(pairs, torch.device("cpu"), pad_to=16)
    assert padded.input_ids.shape == (2, 160) and padded.targets.shape == (2, 64) and padded.valid.numel() == 128
    with torch.no_grad():
        want, _ = token_logprobs(causal_lm, batch)
        ours, _ = token_logprobs(causal_lm, batch, attention_masks=attention_masks(causal_lm, batch))
        padded_lp, _ = token_logprobs(causal_lm, padded, attention_masks=attention_masks(causal_lm, padded))
    assert torch.allclose(ours, want, atol=1e-5)
    real = padded.completion_mask.bool()
    assert torch.allclose(padded_lp[real], want[batch.completion_mask.bool()], atol=1e-5)


@pytest.mark.parametrize("pad_to", [1, 16])
def test_rows_that_share_a_prompt_give_the_logprobs_of_whole_rows(tiny_folder: Path, pad_to: int) -> None:
    # Two prompts of three and two completions, in mixed order; prompt + completion runs past the
    # 128-token sliding window, so the window cuts into the prompt for the later completion tokens.
    from rl2048_engine.fast.attention import attention_masks, use_fast_attention
    from rl2048_engine.loading import load_model
    from rl2048_engine.logprobs import make_batch, token_logprobs
    from rl2048_engine.params import LoadParams

    causal_lm = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu")).causal_lm
    use_fast_attention(causal_lm)
    rng = random.Random(1)
    a, b = [rng.randrange(2000) for _ in range(100)], [rng.randrange(2000) for _ in range(37)]
    pairs = [(p, [rng.randrange(2000) for _ in range(n)]) for p, n in [(a, 60), (b, 5), (a, 1), (b, 90), (a, 33)]]
    shared = make_batch(pairs, torch.device("cpu"), pad_to, share_prompts=True)
    assert shared.input_ids.shape[0] == 1 and shared.shared is not None
    assert shared.shared.group.tolist() == [0, 1, 0, 1, 0]
    assert shared.input_ids.numel() == {1: 2 * 100 + 5 * 90, 16: 2 * 112 + 5 * 96}[pad_to]  # against 5 x 190 or 5 x 192
    whole = make_batch(pairs, torch.device("cpu"))
    with torch.no_grad():
        want, _ = token_logprobs(causal_lm, whole, attention_masks=attention_masks(causal_lm, whole))
        got, _ = token_logprobs(causal_lm, shared, attention_masks=attention_masks(causal_lm, shared))
    for row, (_, completion) in enumerate(pairs):
        assert torch.allclose(got[row, : len(completion)], want[row, : len(completion)], atol=1e-5), row
    with pytest.raises(ValueError, match="attention masks"):
        token_logprobs(causal_lm, shared)


def test_a_failed_capture_turns_the_graphs_off_and_the_steps_run_as_they_are(
    tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With a model on the CPU every capture fails (even where CUDA is, a graph of CPU work would
    # capture nothing): a shape's second step tries,
    # says so once on stderr and runs as it is, as do the steps after it, with the results of the
    # unpadded step (learning rate 0: every step starts from the same weights).
    from rl2048_engine.fast.graphs import CudaGraphs

    engine = Engine()
    engine.load(
        engine.handlers["load"][0](
            model=str(tiny_folder), dtype="float32", device="cpu", seed=3, lora=ATTENTION_LORA, fast=True, optim={"lr": 0.0}
        )
    )
    trainer, graphs = engine.require(), CudaGraphs()
    assert engine.graphs is None  # the engine makes them on CUDA only
    with torch.no_grad():
        for name, param in trainer.loaded.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    params = TrainStepParams.model_validate({"items": items(seed=1), "loss": {"beta": 0.04}, "gradient_accumulation_steps": 2})
    want = train_step_fused(trainer, params)
    for _ in range(3):
        got = train_step_fused(trainer, params, graphs)
        for key in ("loss", "kl", "entropy", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=1e-4), key
    assert list(graphs.failed) == ["the update"] and not graphs.graphs
    assert capsys.readouterr().err.count("CUDA graphs for the update turned off") == 1

    # The logprobs pass, through the engine: its own kind fails once and says so, as above.
    request = engine.handlers["logprobs"][0](
        items=[{"prompt": p, "completion": c} for p, c in random_ids([(20, 30), (9, 14)], seed=5)], reference=True
    )
    want_lp = engine.logprobs(request)
    engine.graphs = graphs
    for _ in range(3):
        got_lp = engine.logprobs(request)
        for key in ("policy", "reference"):
            for got_row, want_row in zip(got_lp[key], want_lp[key], strict=True):
                assert got_row == pytest.approx(want_row, abs=1e-5)
    assert sorted(graphs.failed) == ["the logprobs pass", "the update"] and not graphs.graphs
    assert capsys.readouterr().err.count("CUDA graphs for the logprobs pass turned off") == 1
