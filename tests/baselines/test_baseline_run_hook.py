"""baselines_for_run and attach_baselines: what a run's summary gets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from baseline_helpers import covid_images, write_tree
import r2gen.training.baselines as baselines_module
from r2gen.training.baselines import attach_baselines, baselines_for_run
from tests_support import CONFIG_DIR

TINY = ["encoder=tiny", "llm=tiny", "evaluation=fast"]


class RecordingTracker:
    def __init__(self) -> None:
        self.logged: list[tuple[dict, int]] = []
        self.summary: dict = {}

    def log(self, metrics: dict, step: int) -> None:
        self.logged.append((metrics, step))

    def set_summary(self, values: dict) -> None:
        self.summary.update(values)


def run_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=TINY + overrides)


@pytest.fixture
def covid_tree(tmp_path, data_root):
    images = covid_images(data_root, 6)
    reports = ["Bilateral patchy opacities.", "No consolidation seen.", "Bilateral patchy opacities.",
               "Right lower lobe consolidation."]
    splits = {"train": [(f"tr{i}", reports[i], [images[i]]) for i in range(4)],
              "val": [("v0", "Clear lungs.", [images[4]])],
              "test": [("t0", "Patchy bilateral opacities.", [images[5]]), ("t1", "No consolidation.", [images[1]])]}
    return write_tree(tmp_path / "covid_small", data_root, splits)


def test_run_baselines_without_hypotheses(covid_tree):
    cfg = run_config([f"data.root={covid_tree}", "evaluation.nlg=false", "model.view_fusion=first"])
    result = baselines_for_run(cfg)
    assert result["status"] == "completed"
    assert result["split"] == "test"
    assert result["fingerprint"].startswith("annotation:")
    assert sorted(result["systems"]) == ["most_frequent", "nearest_neighbour", "random"]
    assert "hypotheses" not in result["systems"]["random"]
    assert result["systems"]["nearest_neighbour"]["diagnostics"]["training_copy_rate"] == 1.0
    cached = json.loads(Path(result["cache_path"]).read_text())
    assert cached["key"]["settings"]["view_fusion"] == "first"
    # t1 shows the image of tr1, so retrieval must copy tr1's report.
    assert cached["systems"]["nearest_neighbour"]["hypotheses"][1] == "no consolidation seen ."


def test_run_on_test_only_annotation_is_unavailable(data_root, caplog):
    cfg = run_config(["data=iu_xray", f"data.root={data_root / 'iu_xray'}"])
    with caplog.at_level(logging.WARNING):
        result = baselines_for_run(cfg)
    assert result["status"] == "unavailable"
    assert "['train']" in result["reason"]
    assert "no baselines for this run" in caplog.text


def test_attach_baselines_logs_comparison(covid_tree, caplog):
    cfg = run_config([f"data.root={covid_tree}"])
    results = {"test": {"BLEU_1": 0.9, "BLEU_4": 0.5, "ROUGE_L": 0.9, "CIDEr": 5.0, "diagnostics": {"distinct_1": 0.5}}}
    tracker = RecordingTracker()
    with caplog.at_level(logging.INFO, logger="r2gen.training.baselines"):
        attach_baselines(results, cfg, tracker, step=7)

    baselines = results["baselines"]
    assert baselines["status"] == "completed"
    for name in ("most_frequent", "random", "nearest_neighbour"):
        assert isinstance(baselines["systems"][name]["BLEU_4"], float), name
        assert baselines["margins"][name]["CIDEr"] == pytest.approx(5.0 - baselines["systems"][name]["CIDEr"])
    assert "| this run | 0.9000 |" in caplog.text
    assert "- against nearest_neighbour: beats it" in caplog.text
    assert tracker.logged[0][1] == 7
    assert tracker.summary["baseline/most_frequent/BLEU_4"] == baselines["systems"]["most_frequent"]["BLEU_4"]
    assert tracker.summary["baseline_margin/random/ROUGE_L"] == pytest.approx(
        0.9 - baselines["systems"]["random"]["ROUGE_L"])
    assert tracker.summary["test/diagnostics/distinct_1"] == 0.5


def test_attach_baselines_keeps_run_on_failure(covid_tree, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder weights unreadable")

    monkeypatch.setattr(baselines_module, "cached_baselines", broken)
    results = {"test": {"BLEU_4": 0.1}}
    tracker = RecordingTracker()
    with caplog.at_level(logging.ERROR):
        attach_baselines(results, run_config([f"data.root={covid_tree}"]), tracker, step=1)
    assert results["baselines"] == {"status": "failed", "error": "RuntimeError: encoder weights unreadable"}
    assert "computing the baselines failed" in caplog.text
    assert tracker.logged == []
