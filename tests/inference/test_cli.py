"""The command lines: ``python -m r2gen.predict``, ``r2gen.export`` and ``r2gen.report`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r2gen.training.inference import generation_settings, load_generator
from r2gen.training.study_inputs import StudyInput



def run_module(module: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *arguments], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=environment, check=False)


def test_predict_images_prints_report(tiny_run: Path, dataset_root: Path, tmp_path: Path) -> None:
    views = [dataset_root / "images" / "test-a" / "0.png", dataset_root / "images" / "test-a" / "1.jpg"]
    result = run_module("r2gen.predict", f"run_dir={tiny_run}", f"images=[{views[0]},{views[1]}]",
                        "progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    generator = load_generator(tiny_run, device="cpu")
    expected = generator.generate([StudyInput("test-a", tuple(views))], generation_settings(generator.source.config),
                                  progress=False)
    assert result.stdout == expected[0] + "\n"
    assert "generating 1 study" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_predict_csv_writes_jsonl_with_overrides(tiny_run: Path, dataset_root: Path, tmp_path: Path) -> None:
    images = dataset_root / "images"
    csv_path = tmp_path / "studies.csv"
    csv_path.write_text(f"id,image_paths\nfirst,{images}/test-a/0.png;{images}/test-a/1.jpg\n"
                        f"second,{images}/test-b/0.png\n")
    result = run_module("r2gen.predict", f"run_dir={tiny_run}", f"input={csv_path}", "batch_size=2",
                        "generation.num_beams=2", "generation.max_new_tokens=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "wrote 2 report(s) to predictions.jsonl\n"
    assert "generate" in result.stderr  # the progress bar

    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["first", "second"]
    assert rows[0]["image_paths"] == [f"{images}/test-a/0.png", f"{images}/test-a/1.jpg"]
    assert rows[0]["generation"]["num_beams"] == 2
    assert rows[0]["generation"]["max_new_tokens"] == 3
    assert rows[0]["generation"]["min_new_tokens"] == 2
    assert all(isinstance(row["report"], str) for row in rows)


def test_predict_bad_input_exits_with_message(tiny_run: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.png"
    result = run_module("r2gen.predict", f"run_dir={tiny_run}", f"images=[{missing}]", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{missing}: image file not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_export_command(tiny_run: Path, tmp_path: Path) -> None:
    exported = tmp_path / "model"
    result = run_module("r2gen.export", str(tiny_run), str(exported), "--merge-lora", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{exported}\n"
    assert (exported / "trainable.safetensors").is_file()

    again = run_module("r2gen.export", str(tiny_run), str(exported), cwd=tmp_path)
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_report_command(tiny_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    result = run_module("r2gen.report", str(tiny_run), "--output", str(page), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{page}\n"
    assert page.read_text().count('<tr class="study"') == 3

    missing = run_module("r2gen.report", str(tmp_path), cwd=tmp_path)
    assert missing.returncode == 2
    assert f"{tmp_path / 'config.yaml'}: not found" in missing.stderr
