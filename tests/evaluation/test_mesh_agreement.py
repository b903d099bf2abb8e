"""Agreement of the rule-based labeler with Open-i MeSH terms, pinned as a regression test.

The counts below are the ones published in docs/clinical_efficacy.md. A change to the phrase
lists or the MeSH mapping that moves them must update both places.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from r2gen.evaluation.mesh import (
    MeshRule,
    compute_mesh_agreement,
    format_agreement_table,
    mesh_observations,
    read_openi_reports,
)
from r2gen.evaluation.rules_labeler import RuleBasedLabeler

# (true positives, false positives, false negatives), uncertain labels counted as positive.
EXPECTED_COUNTS = {
    "No Finding": (1319, 1161, 44),
    "Enlarged Cardiomediastinum": (15, 9, 3),
    "Cardiomegaly": (388, 98, 7),
    "Lung Opacity": (539, 71, 44),
    "Lung Lesion": (131, 73, 20),
    "Edema": (81, 46, 20),
    "Consolidation": (30, 9, 0),
    "Pneumonia": (42, 89, 0),
    "Atelectasis": (324, 65, 8),
    "Pneumothorax": (23, 2, 4),
    "Pleural Effusion": (160, 50, 2),
    "Pleural Other": (49, 13, 11),
    "Fracture": (81, 36, 3),
    "Support Devices": (217, 8, 65),
}


@pytest.fixture(scope="module")
def openi_reports(data_root: Path):
    archive = data_root / "iu_xray" / "extras" / "NLMCXR_reports.tgz"
    if not archive.is_file():
        pytest.skip(f"Open-i reports not found at {archive}; set R2GEN_DATA_ROOT to the shared data folder")
    return read_openi_reports(archive)


def test_openi_reports_parsed(openi_reports):
    assert len(openi_reports) == 3955
    first = {report.report_id: report for report in openi_reports}["1"]
    assert first.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits.")
    assert first.impression == "Normal chest x-XXXX."
    assert first.mesh_terms == ("normal",)


def test_agreement_counts_pinned(openi_reports):
    agreement = compute_mesh_agreement(openi_reports, RuleBasedLabeler())

    assert agreement.reports_used == 3832
    assert agreement.reports_skipped == {"no MeSH terms": 0, "No Indexing": 95, "no findings or impression": 28}
    for row in agreement.rows:
        counts = (row.true_positives, row.false_positives, row.false_negatives)
        assert counts == EXPECTED_COUNTS[row.observation], row.observation
    micro = agreement.micro
    assert micro.precision == pytest.approx(0.663, abs=5e-4)
    assert micro.recall == pytest.approx(0.936, abs=5e-4)
    assert micro.f1 == pytest.approx(0.776, abs=5e-4)


def test_agreement_uncertain_as_negative(openi_reports):
    micro = compute_mesh_agreement(openi_reports, RuleBasedLabeler(), uncertain_as_positive=False).micro
    assert (micro.true_positives, micro.false_positives, micro.false_negatives) == (3261, 1363, 369)


def test_agreement_table_rows(openi_reports):
    table = format_agreement_table(compute_mesh_agreement(openi_reports[:200], RuleBasedLabeler()))
    lines = table.splitlines()
    assert len(lines) == 2 + 14 + 1
    assert lines[0].startswith("| Observation | Precision | Recall | F1 |")
    assert lines[-1].startswith("| micro (14) |")


def test_mesh_mapping_rules():
    assert mesh_observations(["normal"]) == {"No Finding"}
    assert mesh_observations(["Cardiomegaly/borderline", "Pleural Effusion/bilateral/small"]) == {
        "Cardiomegaly",
        "Pleural Effusion",
    }
    assert mesh_observations(["Opacity/lung/base/left"]) == {"Lung Opacity"}
    assert mesh_observations(["Density/lung/upper lobe/right/round"]) == {"Lung Opacity", "Lung Lesion"}
    assert mesh_observations(["Calcified Granuloma/lung/upper lobe/right"]) == set()
    assert mesh_observations(["Mediastinum/lymph nodes/enlarged"]) == set()
    assert mesh_observations(["Implanted Medical Device/humerus/right"]) == set()
    assert mesh_observations(["Thickening/pleura/apex/bilateral"]) == {"Pleural Other"}


def test_mesh_rule_qualifiers():
    rule = MeshRule("Density", requires=("lung", "retrocardiac"), requires_all=("round",), excludes=("ribs",))
    assert rule.matches("Density/lung/base/round")
    assert not rule.matches("Density/lung/base")
    assert not rule.matches("Density/thorax/round")
    assert not rule.matches("Opacity/lung/round")


def test_missing_archive_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="NLMCXR_reports.tgz"):
        read_openi_reports(tmp_path / "missing.tgz")
