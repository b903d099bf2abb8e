"""Experiment trackers: Weights & Biases (offline unless ``logger.mode=online``) or nothing.

The trainer calls the same methods on either tracker, so no training code checks which one is active.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from r2gen.training.config import LoggerConfig

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = ["id", "image", "reference", "hypothesis"]
THUMBNAIL_PIXELS = 128  # maximum width and height of the images in the sample table
MAX_TAG_LENGTH = 64  # W&B rejects longer tags


class NullTracker:
    """Tracker that records nothing (``logger=none``, and every process but the main one)."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def log_table(self, key: str, rows: list[dict[str, Any]], step: int | None = None) -> None:
        pass

    def log_samples(self, key: str, records: list[dict[str, Any]], step: int) -> None:
        pass

    def set_summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


class WandbTracker(NullTracker):
    """Logs scalars, tables and sample generations to a W&B run in ``<run dir>/wandb``.

    wandb reads the API key itself, from ``WANDB_API_KEY`` or its netrc file. This class never
    receives the key, so it cannot reach the config, the logs or the run directory.
    """

    def __init__(self, config: LoggerConfig, run_dir: Path, run_config: dict[str, Any]) -> None:
        import wandb

        self._wandb = wandb
        self.log_samples_count = config.log_samples
        self.run = wandb.init(
            project=config.project,
            mode=config.mode,
            group=config.group,
            tags=clean_tags(config.tags) or None,
            config=run_config,
            dir=str(run_dir),
            name=Path(run_dir).name,
            # Jobs of a Hydra sweep share one process, so a run left open by a failed job must not be reused.
            reinit="finish_previous",
        )
        log.info("W&B run %s (%s mode, group %s) in %s", self.run.id, config.mode, config.group, self.run.dir)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        scalars = {key: value for key, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if scalars:
            self.run.log(scalars, step=step)

    def log_table(self, key: str, rows: list[dict[str, Any]], step: int | None = None) -> None:
        """Log rows of equal keys (for example the trainable-parameter table) as a W&B table."""
        if not rows:
            return
        columns = list(rows[0])
        table = self._wandb.Table(columns=columns, data=[[row[column] for column in columns] for row in rows])
        self.run.log({key: table}, step=step)

    def log_samples(self, key: str, records: list[dict[str, Any]], step: int) -> None:
        """Log the first ``log_samples`` records as a table: id, image thumbnail, reference, hypothesis."""
        table = self._wandb.Table(columns=SAMPLE_COLUMNS)
        for record in records[: self.log_samples_count]:
            table.add_data(record["id"], self._thumbnail(record.get("image_path")),
                           record["reference"], record["hypothesis"])
        self.run.log({key: table}, step=step)

    def _thumbnail(self, path: str | None) -> Any:
        if not path:
            return None
        from PIL import Image

        with Image.open(path) as image:
            thumbnail = image.convert("RGB")
        thumbnail.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        return self._wandb.Image(thumbnail, caption=Path(path).name)

    def set_summary(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.run.summary[key] = value

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def clean_tags(tags: list[str]) -> list[str]:
    """Return the tags without duplicates, each cut to W&B's maximum tag length."""
    cleaned: list[str] = []
    for tag in tags:
        tag = str(tag)[:MAX_TAG_LENGTH]
        if tag and tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def check_logger_config(config: LoggerConfig) -> None:
    """Raise ValueError for an unknown ``logger.backend`` or ``logger.mode``."""
    if config.backend not in ("wandb", "none"):
        raise ValueError(f"unknown logger.backend {config.backend!r}; expected 'wandb' or 'none'")
    if config.mode not in ("offline", "online", "disabled"):
        raise ValueError(f"invalid logger.mode {config.mode!r}; expected 'offline', 'online' or 'disabled'")


def build_tracker(config: LoggerConfig, run_dir: Path, run_config: dict[str, Any], is_main: bool) -> NullTracker:
    """Return the configured tracker on the main process and a ``NullTracker`` elsewhere."""
    check_logger_config(config)
    if not is_main or config.backend == "none":
        return NullTracker()
    return WandbTracker(config, run_dir, run_config)
