"""The sweep summary: job discovery, sorting, failed and incomplete jobs, Markdown and CSV output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from r2gen import summarize
from r2gen.training.summary import build_table, find_job_dirs, read_job, summarize_sweep


def make_job(sweep: Path, number: int, overrides: list[str], metrics: dict | None = None,
             error: str | None = None) -> Path:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.txt").write_text(f"Traceback (most recent call last):\n  File \"x.py\"\n{error}\n")
    return job


def completed(best: float, bleu4: float, trainable: int) -> dict:
    return {"status": "completed", "train": {"best_score": best, "steps": 4},
            "test": {"BLEU_4": bleu4, "CIDEr": 0.5, "num_samples": 3, "diagnostics": {"x": 1}},
            "parameters": {"trainable": trainable, "total": 10_000}, "seconds": 12.5, "peak_memory_mb": 900.4}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "depth_x_rank_2025-01-31_12-00-00"
    common = ["encoder=tiny", "llm=tiny"]
    make_job(root, 0, common + ["aligner.depth=1", "tuning.lora.rank=4"], completed(0.20, 0.11, 4_288))
    make_job(root, 1, common + ["aligner.depth=2", "tuning.lora.rank=4"], completed(0.35, 0.15, 8_448))
    make_job(root, 2, common + ["aligner.depth=1", "tuning.lora.rank=0"],
             {"status": "failed", "error": "ValueError: invalid LoRA rank 0: it must be at least 1", "seconds": 3.0},
             error="ValueError: invalid LoRA rank 0: it must be at least 1")
    make_job(root, 10, common + ["aligner.depth=2", "tuning.lora.rank=0"])  # no metrics.json: still running
    return root


def test_find_job_dirs_numeric_order(sweep: Path):
    assert [path.name for path in find_job_dirs(sweep)] == ["0", "1", "2", "10"]


def test_find_job_dirs_missing_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="sweep folder not found"):
        find_job_dirs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no job folders"):
        find_job_dirs(tmp_path / "empty")


def test_read_job_statuses(sweep: Path):
    done = read_job(sweep / "1")
    assert done.status == "completed"
    assert done.best_val_score == 0.35
    assert done.trainable_parameters == 8_448
    assert done.test == {"BLEU_4": 0.15, "CIDEr": 0.5, "num_samples": 3}
    failed = read_job(sweep / "2")
    assert failed.status == "failed"
    assert failed.error == "ValueError: invalid LoRA rank 0: it must be at least 1"
    running = read_job(sweep / "10")
    assert running.status == "incomplete"
    assert running.error is None


def test_table_sorted_by_selection_score(sweep: Path):
    table = build_table([read_job(path) for path in find_job_dirs(sweep)])
    assert table.header == ["job", "status", "aligner.depth", "tuning.lora.rank", "trainable_params",
                            "best_val_score", "test_BLEU_4", "test_CIDEr", "time_s", "peak_memory_mb", "error"]
    assert [row[0] for row in table.rows] == ["1", "0", "2", "10"]
    assert [row[1] for row in table.rows] == ["completed", "completed", "failed", "incomplete"]
    assert table.common_overrides == {"encoder": "tiny", "llm": "tiny"}


def test_summarize_writes_markdown_and_csv(sweep: Path):
    table, markdown = summarize_sweep(sweep)
    assert (sweep / "summary.md").read_text() == markdown
    lines = markdown.splitlines()
    assert lines[0] == "# Sweep summary: depth_x_rank_2025-01-31_12-00-00"
    assert "`encoder=tiny llm=tiny`" in lines[2]
    assert lines[6] == "| 1 | completed | 2 | 4 | 8,448 | 0.3500 | 0.1500 | 0.5000 | 12.5 | 900 |  |"
    assert "| 2 | failed | 1 | 0 |  |  |  |  | 3.0 |  | ValueError: invalid LoRA rank 0: it must be at least 1 |" in lines
    rows = list(csv.DictReader(io.StringIO((sweep / "summary.csv").read_text())))
    assert [row["job"] for row in rows] == ["1", "0", "2", "10"]
    assert rows[0]["best_val_score"] == "0.35"
    assert rows[0]["trainable_params"] == "8448"
    assert rows[3]["status"] == "incomplete"


def test_summarize_cli_prints_table(sweep: Path, tmp_path: Path, capsys):
    output = tmp_path / "out"
    assert summarize.main([str(sweep), "--output-dir", str(output), "--metrics", "CIDEr"]) == 0
    printed = capsys.readouterr().out
    assert "| job | status | aligner.depth | tuning.lora.rank | trainable_params | best_val_score | test_CIDEr |" in printed
    assert (output / "summary.md").read_text() == printed
    assert (output / "summary.csv").is_file()


def test_summarize_cli_missing_folder(tmp_path: Path):
    assert summarize.main([str(tmp_path / "missing")]) == 2
