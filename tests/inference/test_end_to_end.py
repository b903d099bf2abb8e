"""The documented flow on real data: train a tiny model on covid_cxr, predict, export, build the page.

Slow (about a minute of training and test generation on 2 CPU cores) and needs the shared
covid_cxr_notes folder.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TEST_STUDIES = 8  # the run's first test batch (trainer.eval_batch_size is 8)


def run_module(module: str, *arguments: str, cwd: Path, data_root: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "R2GEN_DATA_ROOT": str(data_root)}
    result = subprocess.run([sys.executable, "-m", module, *arguments], capture_output=True, text=True,
                            timeout=900, cwd=cwd, env=environment, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained_run(covid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("covid") / "run"
    run_module("r2gen.run", "encoder=tiny", "llm=tiny", "trainer.max_steps=2", "trainer.batch_size=2",
               "trainer.eval_max_samples=2", "data.min_new_tokens=2", "data.max_new_tokens=4",
               f"hydra.run.dir={run_dir}", cwd=run_dir.parent, data_root=covid_root.parent)
    return run_dir


def test_predict_reproduces_run_test_predictions(trained_run: Path, covid_root: Path, tmp_path: Path) -> None:
    annotation = json.loads((covid_root / "annotation.json").read_text())
    studies = annotation["test"][:TEST_STUDIES]
    with (tmp_path / "studies.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image_paths"])
        for study in studies:
            writer.writerow([study["id"], ";".join(str(covid_root / "images" / p) for p in study["image_path"])])
    run_module("r2gen.predict", f"run_dir={trained_run}", f"input={tmp_path / 'studies.csv'}",
               f"output={tmp_path / 'out.jsonl'}", "batch_size=8", cwd=tmp_path, data_root=covid_root.parent)

    predicted = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    from_run = [json.loads(line) for line in (trained_run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [row["id"] for row in predicted] == [study["id"] for study in studies]
    assert [row["report"] for row in predicted] == [row["hypothesis"] for row in from_run[:TEST_STUDIES]]


def test_predict_one_image_and_folder(trained_run: Path, covid_root: Path, tmp_path: Path) -> None:
    study = json.loads((covid_root / "annotation.json").read_text())["test"][0]
    image = covid_root / "images" / study["image_path"][0]
    single = run_module("r2gen.predict", f"run_dir={trained_run}", f"images=[{image}]",
                        cwd=tmp_path, data_root=covid_root.parent)
    folder = run_module("r2gen.predict", f"run_dir={trained_run}", f"input={image.parent}", "batch_size=1",
                        cwd=tmp_path, data_root=covid_root.parent)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    from_run = json.loads((trained_run / "predictions" / "test.jsonl").read_text().splitlines()[0])
    assert folder.stdout == "wrote 1 report(s) to predictions.jsonl\n"
    assert single.stdout == from_run["hypothesis"] + "\n"
    assert rows[0]["report"] == from_run["hypothesis"]


def test_report_page_covers_test_split(trained_run: Path, covid_root: Path, tmp_path: Path) -> None:
    result = run_module("r2gen.report", str(trained_run), cwd=tmp_path, data_root=covid_root.parent)
    page = (trained_run / "report.html").read_text()
    test_size = len(json.loads((covid_root / "annotation.json").read_text())["test"])
    assert result.stdout == f"{trained_run / 'report.html'}\n"
    assert page.count('<tr class="study"') == test_size
    assert page.count('<img class="thumb"') == test_size
    assert '<span class="name">BLEU_4</span>' in page
