"""``python -m r2gen.baselines`` end to end: outputs, cache reuse, clear failures, and the real covid_cxr numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baseline_helpers import covid_images, write_tree
from tests_support import REPO_ROOT


def run_baselines(overrides: list[str], data_root: Path, cache: Path, out: Path,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "R2GEN_DATA_ROOT": str(data_root), "R2GEN_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "r2gen.baselines", *overrides, f"hydra.run.dir={out}"]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def test_command_writes_tables_and_reuses_cache(tmp_path, data_root, baseline_cache):
    images = covid_images(data_root, 5)
    splits = {"train": [("a", "Bilateral opacities.", [images[0]]), ("b", "Bilateral opacities.", [images[1]]),
                        ("c", "Clear lungs.", [images[2]])],
              "val": [("v", "Clear.", [images[3]])],
              "test": [("t0", "Bilateral patchy opacities.", [images[4]]), ("t1", "Clear lungs.", [images[2]])]}
    root = write_tree(tmp_path / "covid_small", data_root, splits)
    # Diagnostics only, to start no METEOR JVM; the metric columns are covered by the in-process tests.
    overrides = [f"data.root={root}", "encoder=tiny", "evaluation=fast", "evaluation.nlg=false",
                 "baseline.systems=[most_frequent,nearest_neighbour]"]

    first = run_baselines(overrides, data_root, baseline_cache, tmp_path / "out1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| system | empty_generation_rate | mean_hypothesis_words |" in first.stdout
    assert "| nearest_neighbour | 0.0000 | 2.0000 | 2.5000 |" in first.stdout
    summary = json.loads((tmp_path / "out1" / "baselines.json").read_text())
    assert summary["split"] == "test"
    assert summary["studies"] == 2
    assert sorted(summary["systems"]) == ["most_frequent", "nearest_neighbour"]
    assert summary["systems"]["most_frequent"]["diagnostics"]["mean_hypothesis_words"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out1" / "predictions" / "nearest_neighbour.jsonl").open()]
    assert [row["id"] for row in rows] == ["t0", "t1"]
    assert rows[1] == {"id": "t1", "reference": "clear lungs .", "hypothesis": "clear lungs ."}
    assert (tmp_path / "out1" / "baselines.md").read_text().startswith("Baselines on covid_cxr / test")

    second = run_baselines(overrides, data_root, baseline_cache, tmp_path / "out2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "read from" in second.stdout + second.stderr  # Hydra logs to stdout
    assert json.loads((tmp_path / "out2" / "baselines.json").read_text())["systems"] == summary["systems"]


def test_command_on_real_iu_fails_naming_train(tmp_path, data_root, baseline_cache):
    result = run_baselines(["data=iu_xray", "encoder=tiny"], data_root, baseline_cache, tmp_path / "out")
    assert result.returncode == 2
    assert "split(s) ['train'] have no studies" in result.stdout + result.stderr
    assert not (tmp_path / "out" / "baselines.json").exists()


def test_command_rejects_unknown_system(tmp_path, data_root, baseline_cache):
    result = run_baselines(["baseline.systems=[oracle]"], data_root, baseline_cache, tmp_path / "out")
    assert result.returncode != 0
    assert "oracle" in result.stderr


@pytest.mark.slow
def test_covid_cxr_default_baselines(tmp_path, data_root, baseline_cache):
    """The numbers in docs/results.md: real EfficientNet-Lite0 features, full evaluation with bootstrap."""
    # About 4 minutes on 2 shared cores: 201 images through EfficientNet-Lite0, 3 x 1000 bootstrap resamples.
    result = run_baselines(["data=covid_cxr"], data_root, baseline_cache, tmp_path / "out", timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    systems = json.loads((tmp_path / "out" / "baselines.json").read_text())["systems"]
    expected = {"most_frequent": {"BLEU_4": 0.0107, "ROUGE_L": 0.1331, "CIDEr": 0.0040},
                "random": {"BLEU_4": 0.0119, "ROUGE_L": 0.1277, "CIDEr": 0.0120},
                "nearest_neighbour": {"BLEU_4": 0.0213, "ROUGE_L": 0.1689, "CIDEr": 0.1194}}
    for name, metrics in expected.items():
        for key, value in metrics.items():
            assert systems[name][key] == pytest.approx(value, abs=5e-5), (name, key)
        assert systems[name]["bootstrap"]["samples"] == 1000
        assert systems[name]["bootstrap"]["BLEU_4"]["low"] <= systems[name]["BLEU_4"]
        assert systems[name]["diagnostics"]["training_copy_rate"] == 1.0
    assert systems["most_frequent"]["diagnostics"]["mean_hypothesis_words"] == 103
