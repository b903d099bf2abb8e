"""Fixtures for the training tests: a small real dataset in the test's temporary folder.

The small dataset takes the first studies of each covid_cxr split, copies their images, and writes an
R2Gen annotation, so an epoch is a few steps long.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training_helpers import make_small_dataset


@pytest.fixture(scope="session")
def covid_root(data_root: Path) -> Path:
    return data_root / "covid_cxr_notes"


@pytest.fixture(scope="session")
def small_covid(covid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train, 3 val and 3 test studies of covid_cxr: with batch 2 an epoch is 3 optimizer steps."""
    return make_small_dataset(covid_root, tmp_path_factory.mktemp("small_covid"), {"train": 6, "val": 3, "test": 3})
