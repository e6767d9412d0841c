"""Shared fixtures: the `tiny` gpt-oss checkpoints (bf16 and MXFP4), built once per session; and
the `gpu` marker: `@pytest.mark.gpu(reason=...)` tests are skipped without a CUDA GPU, for that
reason (`pytest -m gpu` runs only them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rl2048_engine.init_model import init_model


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model(tmp_path_factory.mktemp("models") / "tiny", "tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_mxfp4_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model(tmp_path_factory.mktemp("models") / "tiny-mxfp4", "tiny", mxfp4=True, device="cpu")


@pytest.fixture(params=["bf16", "mxfp4"])
def any_tiny_folder(request: pytest.FixtureRequest, tiny_folder: Path, tiny_mxfp4_folder: Path) -> Path:
    return tiny_folder if request.param == "bf16" else tiny_mxfp4_folder


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread() -> None:
    """Tiny models on a shared 2-core machine run many times faster on one thread."""
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=marker.kwargs.get("reason", "needs a CUDA GPU")))
