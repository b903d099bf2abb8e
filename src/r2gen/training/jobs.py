"""The Hydra job that started a run: its command-line overrides and the sweep it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


@dataclass
class JobInfo:
    """The command-line overrides of one job and, in a multirun, the sweep's name and the job number."""

    overrides: list[str] = field(default_factory=list)
    sweep_name: str | None = None  # the sweep folder's name, e.g. "depth_x_rank_2025-01-31_12-00-00"
    job_num: int | None = None


def job_info() -> JobInfo:
    """Read the current Hydra job; an empty ``JobInfo`` when Hydra is not running (library use)."""
    if not HydraConfig.initialized():
        return JobInfo()
    hydra_cfg = HydraConfig.get()
    overrides = [str(item) for item in hydra_cfg.overrides.task if not str(item).startswith("hydra.")]
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return JobInfo(overrides=overrides)
    return JobInfo(overrides=overrides, sweep_name=Path(hydra_cfg.sweep.dir).name, job_num=hydra_cfg.job.num)
