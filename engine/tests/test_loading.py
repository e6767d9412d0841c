"""The loaded model computes what transformers computes for the same folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import transformers_model

from rl2048_engine.errors import EngineError
from rl2048_engine.loading import load_model
from rl2048_engine.logprobs import make_batch, token_logprobs
from rl2048_engine.params import LoadParams

IDS = torch.tensor([[3, 77, 1024, 5, 900, 12, 64, 2000], [8, 8, 8, 300, 1, 2, 3, 4]])


def test_logits_match_transformers(any_tiny_folder: Path) -> None:
    loaded = load_model(LoadParams(model=str(any_tiny_folder), dtype="float32", device="cpu"))
    # Transformers may dequantize an MXFP4 folder's experts to bf16 whatever the dtype asked (it did
    # on a GPU machine): exact values (e2m1 times a power of two), computed in bf16. `.float()`
    # makes the reference float32 throughout.
    reference = transformers_model(any_tiny_folder, torch.float32).float().eval()
    with torch.no_grad():
        ours = loaded.model(input_ids=IDS).logits
        theirs = reference(input_ids=IDS).logits
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_chunked_logprobs_match_a_full_log_softmax(tiny_folder: Path) -> None:
    loaded = load_model(LoadParams(model=str(tiny_folder), dtype="float32", device="cpu"))
    prompt, completion = IDS[0, :3].tolist(), IDS[0, 3:].tolist()
    batch = make_batch([(prompt, completion), ([9, 9], [4, 5])], torch.device("cpu"))
    with torch.no_grad():
        ours, entropy = token_logprobs(loaded.causal_lm, batch, temperature=0.7, with_entropy=True)
        logits = loaded.model(input_ids=IDS[:1]).logits[0].float() / 0.7
    full = torch.log_softmax(logits, -1)
    expected = full[2:-1].gather(-1, IDS[0, 3:].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ours[0], expected, rtol=0, atol=1e-5)
    expected_entropy = -(full.exp() * full).sum(-1)[2:-1]
    assert entropy is not None
    torch.testing.assert_close(entropy[0], expected_entropy, rtol=0, atol=1e-4)
    assert ours[1, 2:].abs().sum() == 0  # padding


def test_not_a_model_folder_is_a_model_folder_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as err:
        load_model(LoadParams(model=str(tmp_path), device="cpu"))
    assert err.value.kind == "model_folder"
