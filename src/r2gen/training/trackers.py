"""Experiment trackers: Weights & Biases (offline unless asked) or nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from r2gen.training.config import LoggerConfig

log = logging.getLogger(__name__)


class NullTracker:
    """Tracker that records nothing (``logger=none``)."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker(NullTracker):
    """Logs scalars and a table of sample generations to W&B.

    The API key is read by wandb itself from the environment or its netrc; it is never put in the
    config or the logs.
    """

    def __init__(self, config: LoggerConfig, run_dir: Path, run_config: dict[str, Any]) -> None:
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=config.project,
            mode=config.mode,
            group=config.group,
            tags=list(config.tags) or None,
            config=run_config,
            dir=str(run_dir),
            name=Path(run_dir).name,
        )
        log.info("W&B run %s (%s mode) in %s", self.run.id, config.mode, self.run.dir)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        scalars = {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
        self.run.log(scalars, step=step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        columns = ["id", "image", "reference", "hypothesis"]
        table = self._wandb.Table(columns=columns)
        for row in rows:
            image = self._wandb.Image(row["image_path"]) if row.get("image_path") else None
            table.add_data(row["id"], image, row["reference"], row["hypothesis"])
        self.run.log({"samples": table}, step=step)

    def finish(self) -> None:
        self.run.finish()


def build_tracker(config: LoggerConfig, run_dir: Path, run_config: dict[str, Any], is_main: bool):
    """Return the configured tracker on the main process and a ``NullTracker`` elsewhere."""
    if not is_main or config.backend == "none":
        return NullTracker()
    if config.backend == "wandb":
        return WandbTracker(config, run_dir, run_config)
    raise ValueError(f"unknown logger backend {config.backend!r}; expected 'wandb' or 'none'")
