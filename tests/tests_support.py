"""Paths shared by tests that import them directly (conftest fixtures cover the rest)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "conf"
