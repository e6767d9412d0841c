"""init_model: gpt-oss folders with random weights that transformers loads as published."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from helpers import transformers_model
from transformers import AutoTokenizer, GptOssConfig, GptOssForCausalLM

from rl2048_engine.init_model import PRESETS, init_model, main, model_config, shard_plan, tensor_specs
from rl2048_engine.mxfp4 import mxfp4_to_expert_param
from rl2048_engine.templates.sample_text import SAMPLE_TEXTS
from rl2048_engine.templates.tokenizer import build_tokenizer

PUBLISHED_IDS = {
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|call|>": 200012,
    "<|reserved_200000|>": 200000,
    "<|reserved_200013|>": 200013,
    "<|reserved_201087|>": 201087,
}

PUBLISHED_CONFIG_KEYS = set(
    """architectures attention_bias attention_dropout eos_token_id experts_per_token head_dim hidden_act
    hidden_size initial_context_length initializer_range intermediate_size layer_types
    max_position_embeddings model_type num_attention_heads num_experts_per_tok num_hidden_layers
    num_key_value_heads num_local_experts output_router_logits pad_token_id quantization_config
    rms_norm_eps rope_scaling rope_theta router_aux_loss_coef sliding_window swiglu_limit
    tie_word_embeddings transformers_version use_cache vocab_size""".split()
)
"""The fields of openai/gpt-oss-20b's config.json."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "bf16": init_model(root / "bf16", "tiny", seed=1),
        "mxfp4": init_model(root / "mxfp4", "tiny", mxfp4=True, seed=1),
    }


def stored(folder: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


@pytest.mark.parametrize("kind", ["bf16", "mxfp4"])
def test_transformers_loads_the_folder_and_runs_a_forward(folders: dict[str, Path], kind: str) -> None:
    folder = folders[kind]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = transformers_model(folder, torch.bfloat16)
    assert isinstance(model, GptOssForCausalLM)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a 2048 strategy."}],
        tokenize=False,
        add_generation_prompt=True,
        reasoning_effort="low",
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], PRESETS["tiny"].vocab_size)
    assert torch.isfinite(logits).all() and logits.float().std() > 0


def test_bf16_tensors_are_what_transformers_expects(folders: dict[str, Path]) -> None:
    tensors = stored(folders["bf16"])
    config = GptOssConfig(**json.loads((folders["bf16"] / "config.json").read_text()))
    with torch.device("meta"):
        expected = GptOssForCausalLM(config).state_dict()
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    assert {v.dtype for v in tensors.values()} == {torch.bfloat16}


def test_mxfp4_experts_load_as_their_dequantized_values(folders: dict[str, Path]) -> None:
    tensors = stored(folders["mxfp4"])
    preset = PRESETS["tiny"]
    blocks = tensors["model.layers.1.mlp.experts.gate_up_proj_blocks"]
    scales = tensors["model.layers.1.mlp.experts.gate_up_proj_scales"]
    e, hidden, inter = preset.num_local_experts, preset.hidden_size, preset.intermediate_size
    assert blocks.dtype == scales.dtype == torch.uint8
    assert blocks.shape == (e, 2 * inter, hidden // 32, 16) and scales.shape == (e, 2 * inter, hidden // 32)
    assert tensors["model.layers.1.mlp.experts.down_proj_blocks"].shape == (e, hidden, inter // 32, 16)
    assert "model.layers.1.mlp.experts.gate_up_proj" not in tensors
    model = transformers_model(folders["mxfp4"], torch.bfloat16)
    loaded = model.model.layers[1].mlp.experts.gate_up_proj.detach()
    assert torch.equal(loaded, mxfp4_to_expert_param(blocks, scales, torch.bfloat16))
    for name, tensor in tensors.items():
        if not name.endswith(("_blocks", "_scales")):
            assert tensor.dtype == torch.bfloat16, name


def test_config_has_the_published_fields(folders: dict[str, Path]) -> None:
    bf16 = json.loads((folders["bf16"] / "config.json").read_text())
    mxfp4 = json.loads((folders["mxfp4"] / "config.json").read_text())
    assert "quantization_config" not in bf16
    assert mxfp4.pop("quantization_config") == {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4",
    }
    assert mxfp4 == bf16
    published_20b = model_config(PRESETS["20b"], mxfp4=True)
    assert published_20b["eos_token_id"] == 200002 and published_20b["pad_token_id"] == 199999
    assert published_20b["layer_types"][:2] == ["sliding_attention", "full_attention"]
    assert set(published_20b) == PUBLISHED_CONFIG_KEYS
    generation = json.loads((folders["bf16"] / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folders["bf16"])
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|return|>", "<|endoftext|>", "<|call|>")]
    assert generation["eos_token_id"] == stops
    assert bf16["eos_token_id"] == tokenizer.eos_token_id == stops[0]


def test_tiny_special_tokens_keep_the_published_order(folders: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folders["bf16"])
    regular = PRESETS["tiny"].regular_vocab_size
    for token, published in PUBLISHED_IDS.items():
        if published - 199998 < PRESETS["tiny"].vocab_size - regular:
            assert tokenizer.convert_tokens_to_ids(token) == regular + published - 199998, token
    assert len(tokenizer) == PRESETS["tiny"].vocab_size


def test_published_vocabulary_has_the_real_special_ids() -> None:
    tokenizer = build_tokenizer(SAMPLE_TEXTS, 199998, 201088)
    assert tokenizer.get_vocab_size() == 201088
    for token, published in PUBLISHED_IDS.items():
        assert tokenizer.token_to_id(token) == published, token
    text = "<|start|>user<|message|>café 2048 déjà<|end|>"
    encoded = tokenizer.encode(text).ids
    assert encoded[0] == 200006 and encoded[-1] == 200007
    assert tokenizer.decode(encoded, skip_special_tokens=False) == text


def test_20b_layout_matches_transformers_and_the_published_shapes() -> None:
    preset = PRESETS["20b"]
    config = GptOssConfig(**model_config(preset, mxfp4=False))
    with torch.device("meta"):
        expected = GptOssForCausalLM(config).state_dict()
    specs = tensor_specs(preset, mxfp4=False)
    assert {s.name: s.shape for s in specs} == {k: tuple(v.shape) for k, v in expected.items()}
    packed = {s.name: s for s in tensor_specs(preset, mxfp4=True)}
    assert packed["model.layers.0.mlp.experts.gate_up_proj_blocks"].shape == (32, 5760, 90, 16)
    assert packed["model.layers.0.mlp.experts.gate_up_proj_scales"].shape == (32, 5760, 90)
    assert packed["model.layers.23.mlp.experts.down_proj_blocks"].shape == (32, 2880, 90, 16)
    total = sum(s.nbytes for s in packed.values())
    assert 12.5e9 < total < 14e9  # published gpt-oss-20b: 13.8 GB of safetensors
    assert len(shard_plan(list(packed.values()))) == 3


def test_same_seed_same_weights(tmp_path: Path, folders: dict[str, Path]) -> None:
    again = init_model(tmp_path / "again", "tiny", seed=1)
    other = init_model(tmp_path / "other", "tiny", seed=2)
    first = stored(folders["bf16"])
    assert all(torch.equal(first[k], v) for k, v in stored(again).items())
    assert not torch.equal(first["lm_head.weight"], stored(other)["lm_head.weight"])


def test_sharded_folder_has_an_index_and_the_same_model(tmp_path: Path, folders: dict[str, Path]) -> None:
    sharded = init_model(tmp_path / "sharded", "tiny", mxfp4=True, seed=1, max_shard_bytes=200_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    files = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(files) > 1 and set(index["weight_map"].values()) == set(files)
    assert index["metadata"]["total_size"] == sum((sharded / f).stat().st_size for f in files) - sum(
        8 + int.from_bytes((sharded / f).read_bytes()[:8], "little") for f in files
    )
    ids = torch.tensor([[1, 2, 3, 2004]])
    logits = [
        transformers_model(folder, torch.float32)(ids).logits for folder in (folders["mxfp4"], sharded)
    ]
    assert torch.equal(logits[0], logits[1])


def test_an_existing_folder_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--preset", "tiny", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temporary folder left behind
