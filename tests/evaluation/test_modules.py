"""evaluate modules load offline from the package and return what the plain functions return."""

from __future__ import annotations

import evaluate
import pytest

from r2gen.evaluation import compute_ce_metrics, compute_nlg_metrics, report_diagnostics
from r2gen.evaluation.modules import MODULE_NAMES, module_path
from r2gen.evaluation.rules_labeler import RuleBasedLabeler

PREDICTIONS = ["mild cardiomegaly . no pleural effusion .", "the lungs are clear .", ""]
REFERENCES = ["mild cardiomegaly .", "small left pleural effusion .", "the lungs are clear ."]


def test_nlg_module_matches_function(without_java):
    module = evaluate.load(module_path("nlg_metrics"))
    result = module.compute(predictions=PREDICTIONS, references=REFERENCES)
    ids = ["0", "1", "2"]
    assert result == compute_nlg_metrics(dict(zip(ids, REFERENCES)), dict(zip(ids, PREDICTIONS)))
    assert result["BLEU_1"] > 0.0


@pytest.mark.parametrize("policy", ["positive", "negative", "ignore"])
def test_clinical_module_matches_function(policy):
    module = evaluate.load(module_path("clinical_efficacy"))
    result = module.compute(predictions=PREDICTIONS, references=REFERENCES, uncertain_policy=policy)
    labeler = RuleBasedLabeler()
    expected = compute_ce_metrics(labeler.label_reports(REFERENCES), labeler.label_reports(PREDICTIONS), policy)
    assert result == expected
    # Cardiomegaly matches in study 1; the effusion of study 2 is missed.
    assert result["ce_recall_micro_5"] == pytest.approx(1 / 2)


def test_diagnostics_module_matches_function():
    module = evaluate.load(module_path("report_diagnostics"))
    result = module.compute(predictions=PREDICTIONS, references=REFERENCES, training_reports=["the lungs are clear ."])
    assert result == report_diagnostics(PREDICTIONS, REFERENCES, ["the lungs are clear ."])
    assert result["training_copy_count"] == 1


def test_unknown_module_rejected():
    assert MODULE_NAMES == ("nlg_metrics", "clinical_efficacy", "report_diagnostics")
    with pytest.raises(ValueError, match="unknown evaluate module 'bleu'"):
        module_path("bleu")
