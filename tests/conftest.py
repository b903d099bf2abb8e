"""Fixtures shared by every test folder: where the real data sets are, and a quiet offline hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# A hub lookup without network hangs for ~20 s before failing; every test runs offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def shared_data_root() -> Path:
    """Return the real-data folder from R2GEN_DATA_ROOT, defaulting to <repo>/../shared/data."""
    return Path(os.environ.get("R2GEN_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_data_root()
    if not (root / "covid_cxr_notes" / "annotation.json").is_file():
        pytest.skip(f"real data not found under {root}; set R2GEN_DATA_ROOT to the shared data folder")
    return root
