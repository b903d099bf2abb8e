"""Shared fixtures for the r2gen.evaluation tests."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data folder from R2GEN_DATA_ROOT, by default ``<repo>/../shared/data``."""
    return Path(os.environ.get("R2GEN_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def iu_full_annotation(data_root: Path) -> dict:
    """The full R2Gen IU X-ray annotation (report text only), or a skip when it is absent."""
    path = data_root / "iu_xray" / "extras" / "annotation_r2gen_full_reports_only.json"
    if not path.is_file():
        pytest.skip(f"IU X-ray annotation not found at {path}; set R2GEN_DATA_ROOT to the shared data folder")
    return json.loads(path.read_text())


def simple_clean(report: str) -> str:
    """Lowercase a report and split off periods and commas, close to R2Gen's cleaned form."""
    spaced = re.sub(r"([.,])", r" \1 ", report.lower())
    return " ".join(spaced.split())


@pytest.fixture(scope="session")
def coco_meteor():
    """One pycocoevalcap METEOR process for every direct comparison, since each JVM start is slow."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


@pytest.fixture
def without_java(monkeypatch, tmp_path) -> None:
    """Hide ``java`` from PATH so that METEOR is None and no JVM starts."""
    monkeypatch.setenv("PATH", str(tmp_path))
