"""score_reports with the Hydra configs: keys, nested entries, bootstrap and record checks."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from r2gen.evaluation import CE_KEYS, NLG_KEYS, EvaluationConfig, score_reports
from tests.evaluation.conftest import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "conf" / "evaluation"
RECORDS = [
    {"id": "a", "reference": "mild cardiomegaly . no pleural effusion .", "hypothesis": "mild cardiomegaly ."},
    {"id": "b", "reference": "small left pleural effusion .", "hypothesis": "no pleural effusion ."},
    {"id": "c", "reference": "the lungs are clear .", "hypothesis": "the lungs are clear ."},
    {"id": "d", "reference": "possible pneumonia in the right base .", "hypothesis": ""},
]


def load_config(name: str, **overrides) -> EvaluationConfig:
    return dataclasses.replace(instantiate(OmegaConf.load(CONFIG_DIR / f"{name}.yaml")), **overrides)


def test_default_yaml_equals_defaults():
    assert instantiate(OmegaConf.load(CONFIG_DIR / "default.yaml")) == EvaluationConfig()


def test_fast_yaml_nlg_only():
    config = instantiate(OmegaConf.load(CONFIG_DIR / "fast.yaml"))
    assert config.nlg is True
    assert config.clinical is False
    assert config.bootstrap_samples == 0


def test_unknown_yaml_key_rejected():
    node = OmegaConf.load(CONFIG_DIR / "default.yaml")
    node.bootstrap_sample = 10
    with pytest.raises(Exception, match="bootstrap_sample"):
        instantiate(node)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("labeler", "chexpert", "evaluation.labeler"),
        ("uncertain_policy", "maybe", "evaluation.uncertain_policy"),
        ("bootstrap_samples", -1, "bootstrap_samples"),
        ("confidence", 1.0, "confidence"),
        ("labeler", "chexbert", "chexbert_checkpoint"),
    ],
)
def test_invalid_config_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        EvaluationConfig(**{field: value})


def test_clinical_only_with_bootstrap():
    config = EvaluationConfig(nlg=False, bootstrap_samples=200, bootstrap_seed=5)
    result = score_reports(RECORDS, config, training_reports=["the lungs are clear ."])

    assert not set(NLG_KEYS) & set(result)
    assert set(CE_KEYS) <= set(result)
    # Study a: TP Cardiomegaly; b: FN effusion, FP No Finding; c: TP No Finding;
    # d: FN pneumonia (uncertain as positive), FP No Finding.
    assert result["ce_precision_micro_14"] == pytest.approx(2 / 4)
    assert result["ce_recall_micro_14"] == pytest.approx(2 / 4)
    assert result["clinical_config"] == {"labeler": "rules", "uncertain_policy": "positive", "chexbert_checkpoint": None}
    assert result["clinical_per_observation"]["Cardiomegaly"]["support"] == 1

    bootstrap = result["bootstrap"]
    assert bootstrap["samples"] == 200
    assert bootstrap["seed"] == 5
    assert bootstrap["confidence"] == 0.95
    for key in CE_KEYS:
        assert 0.0 <= bootstrap[key]["low"] <= bootstrap[key]["high"] <= 1.0, key
    again = score_reports(RECORDS, config)["bootstrap"]
    assert again == bootstrap

    diagnostics = result["diagnostics"]
    assert diagnostics["empty_generation_count"] == 1
    assert diagnostics["training_copy_count"] == 1


def test_fast_config_nlg_keys(without_java):
    result = score_reports(RECORDS, load_config("fast"))
    assert set(NLG_KEYS) <= set(result)
    assert not set(CE_KEYS) & set(result)
    assert "bootstrap" not in result
    assert result["METEOR"] is None
    assert all(isinstance(result[key], float) for key in NLG_KEYS if key != "METEOR")
    # ROUGE-L per study (beta 1.2): LCS 3 of 3/7 tokens, LCS 3 of 4/5 tokens, identical, empty.
    study_a = 2.44 * 1.0 * (3 / 7) / (3 / 7 + 1.44 * 1.0)
    study_b = 2.44 * 0.75 * 0.6 / (0.6 + 1.44 * 0.75)
    assert result["ROUGE_L"] == pytest.approx((study_a + study_b + 1.0 + 0.0) / 4)
    assert result["diagnostics"]["studies"] == 4


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no records to score"),
        ([{"id": "a", "reference": "x"}], "has no string field 'hypothesis'"),
        ([{"id": 1, "reference": "x", "hypothesis": "y"}], "has no string field 'id'"),
        (RECORDS[:1] + RECORDS[:1], r"duplicate study ids in records: \['a'\]"),
    ],
)
def test_invalid_records_rejected(records, message):
    with pytest.raises(ValueError, match=message):
        score_reports(records, EvaluationConfig(nlg=False, bootstrap_samples=0))


def test_no_imports_from_other_layers():
    package = REPO_ROOT / "src" / "r2gen" / "evaluation"
    forbidden = ("r2gen.data", "r2gen.models", "r2gen.training")
    for path in package.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert not any(name in stripped for name in forbidden), f"{path}: {stripped}"
