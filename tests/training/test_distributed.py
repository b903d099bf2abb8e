"""Two CPU processes (DDP over gloo) against one: same prediction ids, same metrics, replicas in sync.

Accelerate pads the last round of an evaluation split so every rank gets the same number of batches.
The splits here have odd sizes (5 validation and 9 test studies), so that padding happens, and the
gathered predictions must still list every study exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training_helpers import TINY, make_small_dataset, read_jsonl, run_r2gen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def odd_covid(covid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_dataset(covid_root, tmp_path_factory.mktemp("odd_covid"), {"train": 8, "val": 5, "test": 9})


@pytest.fixture(scope="module")
def ddp_run(data_root: Path, odd_covid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train 3 steps on 2 processes (2 steps per epoch), validating after each epoch."""
    run_dir = tmp_path_factory.mktemp("ddp")
    result = run_r2gen(TINY + [f"data.root={odd_covid}", "trainer.batch_size=2", "trainer.eval_batch_size=2",
                               "trainer.max_steps=3", f"hydra.run.dir={run_dir}"], data_root, processes=2)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def annotation_ids(data: Path, split: str) -> list[str]:
    return [entry["id"] for entry in json.loads((data / "annotation.json").read_text())[split]]


def test_ddp_training_keeps_replicas_in_sync(ddp_run: Path):
    metrics = json.loads((ddp_run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["world_size"] == 2
    assert metrics["train"]["steps"] == 3
    assert metrics["train"]["replica_max_difference"] == 0.0
    versions = json.loads((ddp_run / "versions.json").read_text())
    assert versions["world_size"] == 2
    assert versions["distributed_type"] == "MULTI_CPU"


def test_ddp_main_process_writes_once(ddp_run: Path, odd_covid: Path):
    assert [row["step"] for row in read_jsonl(ddp_run / "train_log.jsonl")] == [1, 2, 3]
    assert sorted(path.name for path in (ddp_run / "predictions").iterdir()) == [
        "test.jsonl", "val_epoch1.jsonl", "val_epoch2.jsonl"]
    for name in ("val_epoch1.jsonl", "val_epoch2.jsonl"):
        ids = [row["id"] for row in read_jsonl(ddp_run / "predictions" / name)]
        assert ids == annotation_ids(odd_covid, "val"), name
    state_files = sorted(path.name for path in (ddp_run / "checkpoints" / "last").iterdir())
    assert state_files == ["custom_checkpoint_0.pkl", "optimizer.bin", "random_states_0.pkl",
                           "random_states_1.pkl", "trainable.safetensors", "trainer_state.json"]


def test_two_processes_score_like_one(ddp_run: Path, odd_covid: Path, data_root: Path, tmp_path: Path):
    checkpoint = ddp_run / "checkpoints" / "best.safetensors"
    # Batch size 1 on both sides: each study is generated alone, so the arithmetic cannot depend on
    # which studies share a batch, and 9 studies on 2 ranks still leave one padded batch.
    common = TINY + [f"data.root={odd_covid}", "eval_only=true", f"checkpoint={checkpoint}",
                     "trainer.eval_batch_size=1"]
    outputs = {}
    for processes in (1, 2):
        run_dir = tmp_path / f"eval_{processes}"
        result = run_r2gen(common + [f"hydra.run.dir={run_dir}"], data_root, processes=processes)
        assert result.returncode == 0, result.stderr[-4000:]
        outputs[processes] = (read_jsonl(run_dir / "predictions" / "test.jsonl"),
                              json.loads((run_dir / "metrics.json").read_text()))

    (single_rows, single), (double_rows, double) = outputs[1], outputs[2]
    expected_ids = annotation_ids(odd_covid, "test")
    assert len(expected_ids) % 2 == 1
    assert [row["id"] for row in double_rows] == expected_ids
    assert double_rows == single_rows
    assert double["world_size"] == 2
    assert single["world_size"] == 1
    assert double["test"]["num_samples"] == 9
    scalar_keys = [key for key, value in single["test"].items() if isinstance(value, (int, float))]
    assert {"BLEU_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(scalar_keys)
    for key in scalar_keys:
        assert double["test"][key] == single["test"][key], key


def test_fsdp_config_starts_on_cpu(data_root: Path, small_covid: Path, tmp_path: Path):
    """FSDP needs GPUs: on CPU the runner still starts with fsdp.yaml, warns, and trains as DDP."""
    result = run_r2gen(TINY + [f"data.root={small_covid}", "trainer.batch_size=2", "trainer.max_steps=1",
                               "trainer.eval_batch_size=3", f"hydra.run.dir={tmp_path}"], data_root, processes=2,
                       accelerate_config="fsdp")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "the launch config asks for FSDP, but Accelerate runs MULTI_CPU" in result.stdout + result.stderr
    versions = json.loads((tmp_path / "versions.json").read_text())
    assert versions["distributed_type"] == "MULTI_CPU"
    assert versions["world_size"] == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["train"]["replica_max_difference"] == 0.0
