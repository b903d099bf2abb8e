"""What every run leaves in its directory: resolved config, package versions, predictions, metrics."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r2gen.training.io import write_json_atomic, write_jsonl_atomic, write_text_atomic

PACKAGES = ("r2gen", "torch", "torchvision", "transformers", "accelerate", "peft", "timm", "hydra-core",
            "omegaconf", "pycocoevalcap", "evaluate", "datasets", "wandb", "safetensors", "numpy")


def collect_versions() -> dict[str, Any]:
    """Return Python, platform, package versions and the git commit of the working tree (if any)."""
    versions: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent)
        versions["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        versions["git_commit"] = None
    return versions


def write_run_info(run_dir: Path, resolved_config_yaml: str, extra: dict[str, Any] | None = None) -> None:
    write_text_atomic(run_dir / "config.yaml", resolved_config_yaml)
    write_json_atomic(run_dir / "versions.json", {**collect_versions(), **(extra or {})})


def write_predictions(path: Path, ids: Sequence[str], references: Sequence[str],
                      hypotheses: Sequence[str]) -> None:
    """Write one JSON object per study: id, reference, hypothesis."""
    rows = [{"id": i, "reference": r, "hypothesis": h} for i, r, h in zip(ids, references, hypotheses)]
    write_jsonl_atomic(path, rows)


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    write_json_atomic(path, metrics)
