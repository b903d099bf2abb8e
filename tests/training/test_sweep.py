"""A small Hydra sweep end to end: per-job folders, a failed job, the summary table and W&B offline runs.

The grid is the ready-made ``sweep=depth_x_rank`` narrowed on the command line to aligner depth 1, 2 and
LoRA rank 0, 2. Rank 0 is invalid, so two of the four jobs fail, and the sweep must still run the
others and list the failures with their error.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training_helpers import REPO_ROOT, TINY, run_env
from wandb_records import read_run, read_table_artifacts

pytestmark = pytest.mark.slow

RANK_ERROR = "invalid LoRA rank 0: it must be at least 1"


@pytest.fixture(scope="module")
def sweep_dir(data_root: Path, small_covid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweeps")
    sweep = root / "depth_x_rank_test"
    command = [sys.executable, "-m", "r2gen.run", "-m", "sweep=depth_x_rank", *TINY, f"data.root={small_covid}",
               "trainer.batch_size=2", "trainer.eval_batch_size=3", "trainer.max_steps=2", "logger=wandb",
               "aligner.depth=1,2", "tuning.lora.rank=0,2", f"hydra.sweep.dir={sweep}"]
    env = {**run_env(data_root), "WANDB_DATA_DIR": str(root / "wandb_data")}
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    # Hydra runs every job, then exits with the first job's error.
    assert result.returncode != 0
    assert "invalid LoRA rank 0" in result.stderr
    return sweep


def test_sweep_job_folders(sweep_dir: Path):
    assert sorted(path.name for path in sweep_dir.iterdir() if path.is_dir()) == ["0", "1", "2", "3"]
    expected = {"0": ("1", "0"), "1": ("1", "2"), "2": ("2", "0"), "3": ("2", "2")}
    for job, (depth, rank) in expected.items():
        overrides = (sweep_dir / job / ".hydra" / "overrides.yaml").read_text()
        assert f"aligner.depth={depth}" in overrides
        assert f"tuning.lora.rank={rank}" in overrides
        assert (sweep_dir / job / "config.yaml").is_file() or rank == "0"
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert metrics["status"] == ("failed" if rank == "0" else "completed"), job
    assert RANK_ERROR in (sweep_dir / "0" / "error.txt").read_text()
    assert "Traceback (most recent call last)" in (sweep_dir / "0" / "error.txt").read_text()
    assert RANK_ERROR in json.loads((sweep_dir / "2" / "metrics.json").read_text())["error"]


def test_summary_table(sweep_dir: Path):
    result = subprocess.run([sys.executable, "-m", "r2gen.summarize", str(sweep_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    markdown = (sweep_dir / "summary.md").read_text()
    assert result.stdout == markdown
    rows = list(csv.DictReader(io.StringIO((sweep_dir / "summary.csv").read_text())))
    assert [row["status"] for row in rows] == ["completed", "completed", "failed", "failed"]
    assert [row["job"] for row in rows[2:]] == ["0", "2"]
    assert all(RANK_ERROR in row["error"] for row in rows[2:])
    assert all(row["error"] == "" for row in rows[:2])
    assert float(rows[0]["best_val_score"]) >= float(rows[1]["best_val_score"])

    by_depth = {row["aligner.depth"]: row for row in rows[:2]}
    for depth, job in (("1", "1"), ("2", "3")):
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())
        row = by_depth[depth]
        assert row["tuning.lora.rank"] == "2"
        assert int(row["trainable_params"]) == metrics["parameters"]["trainable"]
        assert float(row["best_val_score"]) == metrics["train"]["best_score"]
        assert float(row["test_CIDEr"]) == metrics["test"]["CIDEr"]
        assert float(row["time_s"]) > 0
        assert float(row["peak_memory_mb"]) > 0
    assert int(by_depth["2"]["trainable_params"]) > int(by_depth["1"]["trainable_params"])
    assert "Overrides shared by every job:" in markdown
    assert "tuning=lora" in markdown.splitlines()[2]


def test_wandb_runs_share_sweep_group(sweep_dir: Path):
    for job, depth in (("1", 1), ("3", 2)):
        run = read_run(sweep_dir / job)
        assert run.group == "depth_x_rank_test"
        assert f"aligner.depth={depth}" in run.tags
        assert "tuning.lora.rank=2" in run.tags
        assert run.config["aligner"]["depth"] == depth
        keys = run.history_keys()
        for key in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/tokens_per_s",
                    "train/peak_memory_mb", "val/BLEU_4", "val/CIDEr", "val/selection_score", "test/BLEU_4",
                    "final/test/CIDEr"):
            assert key in keys, (job, key)
        assert run.summary["trainable_parameters"] > 0
        for key in ("val/samples", "test/samples"):
            [artifact] = read_table_artifacts(sweep_dir / job, key)
            assert artifact.table["columns"] == ["id", "image", "reference", "hypothesis"]
            assert len(artifact.table["data"]) == 3
            assert artifact.table["data"][0][1]["_type"] == "image-file"
        [parameters] = read_table_artifacts(sweep_dir / job, "parameters")
        assert [row[0] for row in parameters.table["data"]] == ["encoder", "aligner", "llm"]
    assert not (sweep_dir / "0" / "wandb").exists()  # the job failed before its tracker started
