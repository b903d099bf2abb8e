"""Clinical-efficacy metrics against hand-computed values, for each uncertain policy."""

from __future__ import annotations

import pytest

from r2gen.evaluation.clinical import CE_KEYS, ClinicalLabels, compute_ce_metrics
from r2gen.evaluation.labels import OBSERVATIONS


def labels(**values) -> dict:
    """Labels with every observation blank except the given ones (underscores for spaces)."""
    result = {name: None for name in OBSERVATIONS}
    for key, value in values.items():
        result[key.replace("_", " ")] = value
    return result


# Three studies. Reference positives: {Cardiomegaly, Edema}, {Pleural Effusion}, {Atelectasis: -1}.
REFERENCES = [
    labels(Cardiomegaly=1, Edema=1),
    labels(Pleural_Effusion=1, Pneumothorax=0),
    labels(Atelectasis=-1),
]
HYPOTHESES = [
    labels(Cardiomegaly=1),
    labels(Pleural_Effusion=1, Pneumothorax=1),
    labels(Atelectasis=1),
]


def test_keys_complete():
    scores = compute_ce_metrics(REFERENCES, HYPOTHESES)
    assert tuple(scores) == CE_KEYS
    assert len(CE_KEYS) == 18
    assert all(isinstance(value, float) for value in scores.values())


def test_uncertain_positive_hand_computed():
    scores = compute_ce_metrics(REFERENCES, HYPOTHESES, "positive")
    # Cells: TP = Cardiomegaly, Pleural Effusion, Atelectasis; FP = Pneumothorax; FN = Edema.
    assert scores["ce_precision_micro_14"] == pytest.approx(3 / 4)
    assert scores["ce_recall_micro_14"] == pytest.approx(3 / 4)
    assert scores["ce_f1_micro_14"] == pytest.approx(3 / 4)
    # Per observation F1: Cardiomegaly 1, Effusion 1, Atelectasis 1, Edema 0, Pneumothorax 0, others 0.
    assert scores["ce_f1_macro_14"] == pytest.approx(3 / 14)
    assert scores["ce_precision_macro_14"] == pytest.approx(3 / 14)
    # Per study: (P, R, F1) = (1, 1/2, 2/3), (1/2, 1, 2/3), (1, 1, 1).
    assert scores["ce_precision_example_14"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert scores["ce_recall_example_14"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert scores["ce_f1_example_14"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # Five common observations: Pneumothorax is not one of them.
    assert scores["ce_precision_micro_5"] == pytest.approx(1.0)
    assert scores["ce_recall_micro_5"] == pytest.approx(3 / 4)
    assert scores["ce_f1_macro_5"] == pytest.approx(3 / 5)


def test_uncertain_negative_hand_computed():
    scores = compute_ce_metrics(REFERENCES, HYPOTHESES, "negative")
    # The uncertain reference Atelectasis is negative, so the hypothesis Atelectasis is a FP.
    assert scores["ce_precision_micro_14"] == pytest.approx(2 / 4)
    assert scores["ce_recall_micro_14"] == pytest.approx(2 / 3)
    # Study 3 has no reference positive: precision 0, recall 0 (zero division), F1 0.
    assert scores["ce_recall_example_14"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scores["ce_f1_example_14"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_uncertain_ignore_drops_cells():
    scores = compute_ce_metrics(REFERENCES, HYPOTHESES, "ignore")
    # The Atelectasis cell of study 3 is left out: TP 2, FP 1, FN 1.
    assert scores["ce_precision_micro_14"] == pytest.approx(2 / 3)
    assert scores["ce_recall_micro_14"] == pytest.approx(2 / 3)
    # Study 3 has no valid positive cell left, so it scores 0 in the example average.
    assert scores["ce_f1_example_14"] == pytest.approx((2 / 3 + 2 / 3) / 3)


def test_perfect_and_empty_agreement():
    perfect = compute_ce_metrics(REFERENCES, REFERENCES, "positive")
    assert perfect["ce_f1_micro_14"] == 1.0
    assert perfect["ce_f1_example_14"] == 1.0
    blank = [labels()] * 2
    scores = compute_ce_metrics(blank, blank)
    assert scores["ce_f1_micro_14"] == 0.0
    assert scores["ce_f1_example_5"] == 0.0


def test_resample_indices_repeat_studies():
    clinical = ClinicalLabels.from_labels(REFERENCES, HYPOTHESES, "positive")
    assert clinical.scores([0, 0])["ce_recall_micro_14"] == pytest.approx(1 / 2)
    assert clinical.scores([1, 1, 2])["ce_precision_micro_14"] == pytest.approx(3 / 5)


def test_per_observation_support():
    per_observation = ClinicalLabels.from_labels(REFERENCES, HYPOTHESES, "positive").per_observation()
    assert per_observation["Cardiomegaly"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per_observation["Edema"]["support"] == 1
    assert per_observation["Edema"]["recall"] == 0.0
    assert per_observation["Pneumothorax"]["precision"] == 0.0


def test_invalid_inputs_rejected():
    with pytest.raises(ValueError, match="uncertain policy 'maybe' is invalid"):
        compute_ce_metrics(REFERENCES, HYPOTHESES, "maybe")
    with pytest.raises(ValueError, match="3 references but 2 hypotheses"):
        compute_ce_metrics(REFERENCES, HYPOTHESES[:2])
    with pytest.raises(ValueError, match="label 2 for 'Edema'"):
        compute_ce_metrics([labels(Edema=2)], [labels()])
