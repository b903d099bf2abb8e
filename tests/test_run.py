"""End-to-end runs of ``python -m r2gen.run`` on the real covid_cxr and IU X-ray data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = ["encoder=tiny", "llm=tiny", "trainer.batch_size=2", "trainer.eval_batch_size=4",
        "data.min_new_tokens=2", "data.max_new_tokens=4", "generation.num_beams=1", "evaluation=fast"]


def run_r2gen(overrides: list[str], data_root: Path, run_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "R2GEN_DATA_ROOT": str(data_root), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "r2gen.run", *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_run_on_covid_writes_artifacts(data_root, tmp_path):
    result = run_r2gen(TINY + ["trainer.max_steps=3", "trainer.eval_max_samples=3"], data_root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    test_predictions = read_jsonl(tmp_path / "predictions" / "test.jsonl")
    assert len(test_predictions) == 51
    assert len({row["id"] for row in test_predictions}) == 51
    assert set(test_predictions[0]) == {"id", "reference", "hypothesis"}
    # References are the full cleaned notes, never truncated to the training target length.
    assert max(len(row["reference"].split()) for row in test_predictions) > 100
    assert len(read_jsonl(tmp_path / "predictions" / "val_epoch1.jsonl")) == 3

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert isinstance(metrics["test"][key], float), key
    assert metrics["train"]["steps"] == 3
    assert metrics["test"]["num_samples"] == 51

    config_text = (tmp_path / "config.yaml").read_text()
    assert "covid_cxr" in config_text and "${" not in config_text  # resolved
    versions = json.loads((tmp_path / "versions.json").read_text())
    assert versions["torch"] and versions["transformers"]
    assert versions["data_fingerprint"].startswith(("manifest:", "annotation:"))
    assert (tmp_path / "checkpoints" / "best.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "last" / "trainer_state.json").is_file()


def test_iu_xray_eval_only_on_complete_study(data_root, tmp_path):
    result = run_r2gen(TINY + ["data=iu_xray", "eval_only=true"], data_root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = read_jsonl(tmp_path / "predictions" / "test.jsonl")
    assert [row["id"] for row in predictions] == ["CXR1005_IM-0006"]
    assert predictions[0]["reference"].endswith(" .")  # cleaned with the IU rules
    assert not (tmp_path / "checkpoints").exists()


def test_mistyped_override_fails_at_startup(data_root, tmp_path):
    result = run_r2gen(TINY + ["trainer.lerning_rate=0.1"], data_root, tmp_path, timeout=120)
    assert result.returncode != 0
    assert "lerning_rate" in result.stderr


def test_missing_image_fails_before_training(data_root, tmp_path):
    root = tmp_path / "broken"
    (root / "images" / "a").mkdir(parents=True)
    source = data_root / "covid_cxr_notes" / "images" / "ARDSSevere" / "0.png"
    (root / "images" / "a" / "0.png").write_bytes(source.read_bytes())
    entry = {"id": "a", "report": "Clear lungs.", "image_path": ["a/0.png"]}
    missing = {"id": "ghost", "report": "Small effusion.", "image_path": ["ghost/0.png"]}
    annotation = {"train": [entry, missing], "val": [entry | {"id": "b"}], "test": [entry | {"id": "c"}]}
    (root / "annotation.json").write_text(json.dumps(annotation))

    result = run_r2gen(TINY + [f"data.root={root}"], data_root, tmp_path / "run", timeout=120)
    assert result.returncode != 0
    assert "ghost" in result.stderr
    assert "ghost/0.png" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
