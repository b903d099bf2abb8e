"""One table over the jobs of a Hydra multirun: overrides, size, scores, time, memory and failures.

Every job folder has ``.hydra/overrides.yaml`` (written by Hydra) and, once the job ends,
``metrics.json`` (written by the runner, with ``"status": "failed"`` and the error if it raised).
A job folder without ``metrics.json`` is listed as ``incomplete``: it is still running or was killed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from r2gen.training.io import write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")
MARKDOWN_FILE = "summary.md"
CSV_FILE = "summary.csv"


@dataclass
class JobResult:
    """Status, size, scores, time and memory of one sweep job, read from its folder."""

    path: Path
    overrides: dict[str, str]
    status: str  # "completed", "failed" or "incomplete"
    trainable_parameters: int | None = None
    best_val_score: float | None = None
    test: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    peak_memory_mb: float | None = None
    error: str | None = None


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Return the job folders under ``sweep_dir`` (those with ``.hydra/overrides.yaml``), in path order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep_dir}; pass the folder Hydra printed "
                                "for the multirun (for example multirun/2025-01-31_12-00-00)")
    jobs = sorted({path.parent.parent for path in sweep_dir.rglob(".hydra/overrides.yaml")},
                  key=lambda path: [int(part) if part.isdigit() else part for part in path.parts])
    if not jobs:
        raise FileNotFoundError(f"no job folders (with .hydra/overrides.yaml) under {sweep_dir}; "
                                "is this the folder of a `python -m r2gen.run -m ...` sweep?")
    return jobs


def read_job(job_dir: Path) -> JobResult:
    """Read one job folder into a ``JobResult``."""
    overrides = _read_overrides(job_dir / ".hydra" / "overrides.yaml")
    metrics_path = job_dir / "metrics.json"
    if not metrics_path.is_file():
        return JobResult(job_dir, overrides, "incomplete", error=_error_text(job_dir))
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return JobResult(job_dir, overrides, "failed", error=f"{metrics_path} is not valid JSON: {error}")
    status = metrics.get("status", "completed")
    test = {key: value for key, value in (metrics.get("test") or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return JobResult(
        path=job_dir, overrides=overrides, status=status,
        trainable_parameters=(metrics.get("parameters") or {}).get("trainable"),
        best_val_score=(metrics.get("train") or {}).get("best_score"), test=test,
        seconds=metrics.get("seconds"), peak_memory_mb=metrics.get("peak_memory_mb"),
        error=metrics.get("error") or (_error_text(job_dir) if status != "completed" else None))


def _read_overrides(path: Path) -> dict[str, str]:
    items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    overrides = {}
    for item in items:
        key, _, value = str(item).partition("=")
        if not key.startswith("hydra."):
            overrides[key] = value
    return overrides


def _error_text(job_dir: Path) -> str | None:
    """Return the last line of ``error.txt`` (the exception and its message), if the file exists."""
    path = job_dir / "error.txt"
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[-1] if lines else None


def sort_jobs(jobs: list[JobResult]) -> list[JobResult]:
    """Sort completed jobs by best validation score (highest first), then the rest in folder order."""
    def key(job: JobResult) -> tuple[int, float]:
        if job.status != "completed":
            return (2, 0.0)
        if job.best_val_score is None:
            return (1, 0.0)
        return (0, -job.best_val_score)

    return sorted(jobs, key=key)


@dataclass
class SummaryTable:
    """The rows of a sweep summary, with the overrides shared by every job kept apart."""

    header: list[str]
    rows: list[list[Any]]
    common_overrides: dict[str, str]


def build_table(jobs: list[JobResult], metrics: tuple[str, ...] = DEFAULT_METRICS) -> SummaryTable:
    """Turn jobs into rows: job, status, varying overrides, parameters, scores, time, memory, error."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    varying = [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]
    common = {key: jobs[0].overrides[key] for key in keys if key not in varying}
    present = [name for name in metrics if any(name in job.test for job in jobs)]
    header = (["job", "status", *varying, "trainable_params", "best_val_score"]
              + [f"test_{name}" for name in present] + ["time_s", "peak_memory_mb", "error"])
    rows = []
    for job in sort_jobs(jobs):
        rows.append([job.path.name, job.status, *[job.overrides.get(key) for key in varying],
                     job.trainable_parameters, job.best_val_score, *[job.test.get(name) for name in present],
                     job.seconds, job.peak_memory_mb, job.error])
    return SummaryTable(header, rows, common)


def _format_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "trainable_params":
        return f"{value:,}"
    if column in ("time_s", "peak_memory_mb"):
        return f"{value:.0f}" if column == "peak_memory_mb" else f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: SummaryTable, title: str) -> str:
    lines = [f"# Sweep summary: {title}", ""]
    if table.common_overrides:
        shared = " ".join(f"{key}={value}" for key, value in table.common_overrides.items())
        lines += [f"Overrides shared by every job: `{shared}`", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join("---" for _ in table.header) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_format_cell(col, value) for col, value in zip(table.header, row)) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: SummaryTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def summarize_sweep(sweep_dir: Path, output_dir: Path | None = None,
                    metrics: tuple[str, ...] = DEFAULT_METRICS) -> tuple[SummaryTable, str]:
    """Read every job of ``sweep_dir``, write ``summary.md`` and ``summary.csv``, return the table and Markdown."""
    sweep_dir = Path(sweep_dir)
    jobs = [read_job(path) for path in find_job_dirs(sweep_dir)]
    table = build_table(jobs, metrics)
    markdown = to_markdown(table, sweep_dir.name)
    output_dir = Path(output_dir or sweep_dir)
    write_text_atomic(output_dir / MARKDOWN_FILE, markdown)
    write_text_atomic(output_dir / CSV_FILE, to_csv(table))
    failed = sum(1 for job in jobs if job.status != "completed")
    log.info("summarized %d jobs (%d not completed) into %s", len(jobs), failed, output_dir)
    return table, markdown
