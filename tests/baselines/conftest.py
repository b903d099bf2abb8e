"""Fixtures of the baseline tests: an isolated cache folder for every test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def baseline_cache(tmp_path, monkeypatch):
    """Point ``$R2GEN_CACHE_DIR`` at a fresh folder, so no test reads another's cached baselines."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("R2GEN_CACHE_DIR", str(folder))
    return folder
