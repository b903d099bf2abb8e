"""Fixtures for the inference, export and results-page tests: a small dataset and a saved tiny run."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from inference_helpers import make_dataset, make_run  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, dataset_root: Path) -> Path:
    """A saved run of the tiny model with LoRA on the encoder. Tests must not modify it."""
    return make_run(tmp_path_factory.mktemp("run"), dataset_root, tuning="lora")


@pytest.fixture(scope="session")
def covid_root() -> Path:
    """The real covid_cxr_notes folder from R2GEN_DATA_ROOT (default ``<repo>/../shared/data``), or a skip."""
    root = Path(os.environ.get("R2GEN_DATA_ROOT", REPO_ROOT.parent / "shared" / "data")) / "covid_cxr_notes"
    if not (root / "annotation.json").is_file():
        pytest.skip(f"covid_cxr_notes not found at {root}; set R2GEN_DATA_ROOT to the shared data folder")
    return root
