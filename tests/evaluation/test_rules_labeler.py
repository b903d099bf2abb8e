"""Rule-based CheXpert labeler: negation and uncertainty scope, subjects, exclusions, No Finding."""

from __future__ import annotations

import pytest

from r2gen.evaluation.labels import OBSERVATIONS
from r2gen.evaluation.rules_labeler import RuleBasedLabeler, split_sentences

# (report, expected labels of some observations): 1 positive, 0 negative, -1 uncertain, None blank.
CASES = [
    ("No pleural effusion or pneumothorax.", {"Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1}),
    ("Heart size is normal.", {"Cardiomegaly": 0}),
    ("Cannot exclude pneumonia.", {"Pneumonia": -1, "No Finding": None}),
    ("Resolved left effusion.", {"Pleural Effusion": 0}),
    ("Interval removal of the chest tube.", {"Support Devices": 0}),
    ("The heart is not enlarged.", {"Cardiomegaly": 0}),
    ("Heart size is at the upper limits of normal.", {"Cardiomegaly": -1}),
    ("Left basilar opacity may represent atelectasis or pneumonia.", {"Lung Opacity": 1, "Atelectasis": -1, "Pneumonia": -1}),
    ("No focal consolidation to suggest pneumonia.", {"Consolidation": 0, "Pneumonia": 0}),
    ("No change in small left pleural effusion.", {"Pleural Effusion": 1}),
    ("No pneumothorax, but there is a small right effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("Pneumonia is not excluded.", {"Pneumonia": -1}),
    ("Pleural effusions and pneumothorax are not seen.", {"Pleural Effusion": 0, "Pneumothorax": 0}),
    ("The heart is obscured by a large effusion.", {"Cardiomegaly": None, "Pleural Effusion": 1}),
    ("Mild blunting of the right costophrenic angle.", {"Pleural Effusion": -1}),
    ("Small pericardial effusion.", {"Pleural Effusion": None}),
    ("Right IJ central venous catheter tip in the SVC.", {"Support Devices": 1, "No Finding": 1}),
    ("Enlarged cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": 1}),
    ("Stable mild cardiomegaly.", {"Cardiomegaly": 1, "No Finding": None}),
    ("Pneumothorax has resolved.", {"Pneumothorax": 0}),
    ("The chest tube has been removed.", {"Support Devices": 0}),
    ("Healed left rib fractures.", {"Fracture": 1}),
    ("No acute displaced rib fracture.", {"Fracture": 0}),
    ("Possible small left pleural effusion.", {"Pleural Effusion": -1}),
    ("Findings suspicious for pneumonia.", {"Pneumonia": -1}),
    ("Atelectasis versus consolidation in the left lower lobe.", {"Atelectasis": -1, "Consolidation": -1}),
    ("Calcified granuloma in the right upper lobe.", {"Lung Lesion": None, "No Finding": 1}),
    ("Pulmonary nodule in the left upper lobe.", {"Lung Lesion": 1}),
    ("No evidence of pulmonary edema.", {"Edema": 0}),
    ("Mild pulmonary vascular congestion.", {"Edema": 1}),
    ("Apical pleural thickening.", {"Pleural Other": 1}),
    ("the lungs are clear . no pleural effusion or pneumothorax . heart size normal .",
     {"Pleural Effusion": 0, "Pneumothorax": 0, "Cardiomegaly": 0, "No Finding": 1}),
    ("There is no focal airspace consolidation, pleural effusion or pneumothorax, the heart is enlarged.",
     {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0, "Cardiomegaly": 1}),
    ("Normal heart size. Mediastinum is widened.", {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 1}),
    ("No new consolidation.", {"Consolidation": 0}),
    ("Unchanged left lower lobe atelectasis.", {"Atelectasis": 1}),
    ("The lungs are free of focal airspace disease.", {"Lung Opacity": 0}),
    ("Pneumonia is unlikely.", {"Pneumonia": -1}),
    ("No pneumothorax. Large right pleural effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("Pacemaker leads in the right atrium and ventricle.", {"Support Devices": 1}),
    ("Normal cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": 0}),
    ("Heart size and pulmonary vascularity appear within normal limits.", {"Cardiomegaly": 0}),
    ("Without evidence of pneumothorax or effusion.", {"Pneumothorax": 0, "Pleural Effusion": 0}),
    ("Patchy opacity concerning for pneumonia.", {"Lung Opacity": 1, "Pneumonia": -1}),
    ("Subsegmental atelectasis in the left base, no consolidation.", {"Atelectasis": 1, "Consolidation": 0}),
    ("", {"No Finding": 1, "Cardiomegaly": None}),
]


@pytest.fixture(scope="module")
def labeler() -> RuleBasedLabeler:
    return RuleBasedLabeler()


@pytest.mark.parametrize(("report", "expected"), CASES, ids=[case[0][:40] or "empty" for case in CASES])
def test_labeler_cases(labeler, report, expected):
    labels = labeler.label(report)
    for observation, value in expected.items():
        assert labels[observation] == value, f"{observation} in {report!r}"


def test_label_has_all_observations(labeler):
    labels = labeler.label("Mild cardiomegaly. No pleural effusion.")
    assert tuple(labels) == OBSERVATIONS
    assert set(labels.values()) <= {1, 0, -1, None}


def test_unmentioned_observations_blank(labeler):
    labels = labeler.label("Mild cardiomegaly.")
    for name in OBSERVATIONS:
        if name != "Cardiomegaly":
            assert labels[name] is None, name


def test_positive_mention_wins_over_negative(labeler):
    labels = labeler.label("No right pleural effusion. Small left pleural effusion.")
    assert labels["Pleural Effusion"] == 1


def test_uncertain_wins_over_negative(labeler):
    labels = labeler.label("No pleural effusion on the right. Possible small left effusion.")
    assert labels["Pleural Effusion"] == -1


def test_negation_stops_at_sentence_end(labeler):
    labels = labeler.label("No pneumothorax. Pleural effusion.")
    assert labels["Pneumothorax"] == 0
    assert labels["Pleural Effusion"] == 1


def test_negation_scope_word_limit(labeler):
    far = "No acute abnormality is seen in the upper lobes of either lung on these two views today and pneumothorax"
    assert labeler.label(far)["Pneumothorax"] == 1


def test_label_reports_reuses_identical_text(labeler):
    results = labeler.label_reports(["Mild cardiomegaly.", "Mild cardiomegaly.", "No effusion."])
    assert results[0] == results[1]
    assert results[0] is not results[1]
    assert results[2]["Pleural Effusion"] == 0


def test_find_mentions_reports_phrases(labeler):
    mentions = labeler.find_mentions("Heart size is normal. Cannot exclude pneumonia.")
    found = {(mention.observation, mention.text, mention.label) for mention in mentions}
    assert ("Cardiomegaly", "heart size is normal", 0) in found
    assert ("Pneumonia", "pneumonia", -1) in found


def test_split_sentences_keeps_decimals():
    assert split_sentences("Nodule of 1.5 cm.  No  effusion; mild atelectasis.\nClear") == [
        "nodule of 1.5 cm",
        "no effusion",
        "mild atelectasis",
        "clear",
    ]
