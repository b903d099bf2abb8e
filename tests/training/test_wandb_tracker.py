"""W&B tracker against real offline run files: config, group, tags, scalars, tables, and no API key."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from r2gen.training.config import LoggerConfig
from r2gen.training.trackers import NullTracker, WandbTracker, build_tracker, clean_tags
from wandb_records import read_run, read_table_artifacts

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Log a short run offline with a fake API key in the environment; return its run folder."""
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))  # staged table artifacts
    image_path = tmp_path / "cxr.png"
    Image.new("L", (512, 400), color=90).save(image_path)
    config = LoggerConfig(backend="wandb", mode="offline", group="depth_x_rank_2025", log_samples=2,
                          tags=["aligner.depth=2", "aligner.depth=2", "data.root=" + "x" * 80])
    run_dir = tmp_path / "run"
    tracker = build_tracker(config, run_dir, {"trainer": {"lr": 1e-4}, "tuning": {"llm": "frozen"}}, is_main=True)
    assert isinstance(tracker, WandbTracker)
    parameters = [{"module": "aligner", "trainable": 4288, "total": 4288, "mode": "full"}]
    tracker.log_table("parameters", parameters, step=0)
    tracker.log({"train/loss": 2.5, "train/lr": 1e-4, "train/grad_norm": 0.3, "flag": True, "text": "x"}, step=1)
    records = [{"id": f"s{i}", "reference": f"ref {i}", "hypothesis": f"hyp {i}", "image_path": str(image_path)}
               for i in range(3)]
    tracker.log_samples("val/samples", records, step=1)
    tracker.set_summary({"best_val_score": 0.42})
    tracker.finish()
    return run_dir


def test_offline_run_group_tags_config(offline_run: Path):
    run = read_run(offline_run)
    assert run.group == "depth_x_rank_2025"
    assert run.tags == ["aligner.depth=2", "data.root=" + "x" * 54]
    assert run.config["trainer"] == {"lr": 1e-4}
    assert run.config["tuning"] == {"llm": "frozen"}


def test_offline_run_scalars_and_summary(offline_run: Path):
    run = read_run(offline_run)
    scalars = [row for row in run.history if "train/loss" in row]
    assert len(scalars) == 1
    assert scalars[0]["train/loss"] == 2.5
    assert scalars[0]["train/grad_norm"] == 0.3
    assert "flag" not in run.history_keys()
    assert "text" not in run.history_keys()
    assert run.summary["best_val_score"] == 0.42


def test_offline_run_sample_table(offline_run: Path):
    run = read_run(offline_run)
    assert any("val/samples/path" in row for row in run.history)
    [artifact] = read_table_artifacts(offline_run, "val/samples")
    table = artifact.table
    assert table["columns"] == ["id", "image", "reference", "hypothesis"]
    assert [cells[0] for cells in table["data"]] == ["s0", "s1"]
    assert table["data"][1][2:] == ["ref 1", "hyp 1"]
    image = table["data"][0][1]
    assert image["_type"] == "image-file"
    assert (image["width"], image["height"]) == (128, 100)
    with Image.open(artifact.files[image["path"]]) as thumbnail:
        assert thumbnail.size == (128, 100)


def test_offline_run_parameter_table(offline_run: Path):
    [artifact] = read_table_artifacts(offline_run, "parameters")
    assert artifact.table["columns"] == ["module", "trainable", "total", "mode"]
    assert artifact.table["data"] == [["aligner", 4288, 4288, "full"]]


def test_api_key_never_written(offline_run: Path):
    for path in offline_run.parent.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_build_tracker_choices(tmp_path: Path):
    assert type(build_tracker(LoggerConfig(backend="none"), tmp_path, {}, is_main=True)) is NullTracker
    assert type(build_tracker(LoggerConfig(backend="wandb"), tmp_path, {}, is_main=False)) is NullTracker
    with pytest.raises(ValueError, match="unknown logger.backend 'tensorboard'"):
        build_tracker(LoggerConfig(backend="tensorboard"), tmp_path, {}, is_main=True)
    with pytest.raises(ValueError, match="invalid logger.mode 'offine'"):
        build_tracker(LoggerConfig(backend="wandb", mode="offine"), tmp_path, {}, is_main=True)
    assert list(tmp_path.iterdir()) == []


def test_clean_tags():
    assert clean_tags(["a", "a", "", "b" * 70]) == ["a", "b" * 64]
