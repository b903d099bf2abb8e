"""Fixtures for the data tests: the shared real-data folders, skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """Return the real-data folder from R2GEN_DATA_ROOT, defaulting to <repo>/../shared/data."""
    return Path(os.environ.get("R2GEN_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def covid_root() -> Path:
    root = shared_data_root() / "covid_cxr_notes"
    if not (root / "annotation.json").is_file():
        pytest.skip(f"covid_cxr_notes not found at {root}; set R2GEN_DATA_ROOT to the data folder")
    return root


@pytest.fixture
def iu_root() -> Path:
    root = shared_data_root() / "iu_xray"
    if not (root / "extras" / "NLMCXR_reports.tgz").is_file():
        pytest.skip(f"iu_xray not found at {root}; set R2GEN_DATA_ROOT to the data folder")
    return root
