"""Tests for the MIMIC-CXR builder on a small fake tree in the official MIMIC-CXR-JPG layout."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from r2gen.data.annotation import load_annotation
from r2gen.data.prepare import main
from r2gen.data.prepare_mimic_cxr import extract_sections
from r2gen.data.validate import validate_studies

REPORT_WITH_FINDINGS = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___F with new onset ascites  // eval for infection
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  None.
 
 FINDINGS:  
 
 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows. The
 cardiomediastinal silhouette is normal.
 
 IMPRESSION:  
 
 No acute cardiopulmonary process.
"""
FINDINGS_TEXT = (
    "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular opacities "
    "that most likely represent nipple shadows. The cardiomediastinal silhouette is normal."
)
REPORT_IMPRESSION_ONLY = """                                 FINAL REPORT
 INDICATION:  Shortness of breath.
 
 IMPRESSION:  Mild pulmonary edema.
"""
REPORT_SHORT = """ FINAL REPORT
 FINDINGS: Lungs are clear. No effusion.
 IMPRESSION: Normal chest.
"""

# (subject, study, dicom, official split, view, report text or None, write the JPEG?)
IMAGES = [
    ("10000032", "50414267", "d-pa", "train", "PA", REPORT_WITH_FINDINGS, True),
    ("10000032", "50414267", "d-lat", "train", "LATERAL", REPORT_WITH_FINDINGS, True),
    ("10000032", "53189527", "d-ap", "train", "AP", REPORT_SHORT, True),
    ("10000764", "57375967", "d-imp", "validate", "PA", REPORT_IMPRESSION_ONLY, True),
    ("10000764", "57375968", "d-val", "validate", "AP", REPORT_SHORT, True),
    ("10000764", "57375968", "d-ll", "validate", "LL", REPORT_SHORT, True),
    ("11000011", "51029426", "d-norep", "test", "PA", None, True),
    ("11000183", "52000001", "d-noimg", "test", "AP", REPORT_SHORT, False),
    ("11000183", "52000002", "d-test", "test", "PA", REPORT_SHORT, True),
]


def write_csv_gz(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8")))


@pytest.fixture
def mimic_root(tmp_path) -> Path:
    root = tmp_path / "mimic-cxr-jpg"
    reports = tmp_path / "reports"
    root.mkdir()
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
                 [[dicom, study, subject, split] for subject, study, dicom, split, *_ in IMAGES])
    write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz",
                 ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                  "Rows", "Columns"],
                 [[dicom, subject, study, "CHEST (PA AND LAT)", view, "32", "32"]
                  for subject, study, dicom, _, view, *_ in IMAGES])
    for subject, study, dicom, _, _, text, has_image in IMAGES:
        folder = f"files/p{subject[:2]}/p{subject}"
        if has_image:
            (root / folder / f"s{study}").mkdir(parents=True, exist_ok=True)
            Image.new("L", (32, 32), color=128).save(root / folder / f"s{study}" / f"{dicom}.jpg")
        if text is not None:
            (reports / folder).mkdir(parents=True, exist_ok=True)
            (reports / folder / f"s{study}.txt").write_text(text, encoding="utf-8")
    return root


def build(mimic_root: Path, out: Path, *options: str) -> tuple[dict, dict]:
    reports = mimic_root.parent / "reports"
    assert main(["mimic_cxr", "--root", str(mimic_root), "--reports", str(reports), "--out", str(out), *options]) == 0
    annotation = json.loads((out / "annotation.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return annotation, manifest


def test_extract_sections_collapses_whitespace():
    sections = extract_sections(REPORT_WITH_FINDINGS)
    assert sections["FINDINGS"] == FINDINGS_TEXT
    assert sections["IMPRESSION"] == "No acute cardiopulmonary process."
    assert sections["COMPARISON"] == "None."
    assert "FINDINGS" not in extract_sections(REPORT_IMPRESSION_ONLY)


def test_mimic_build_per_image_findings(mimic_root, tmp_path):
    annotation, manifest = build(mimic_root, tmp_path / "out")
    ids = {split: [entry["id"] for entry in entries] for split, entries in annotation.items()}
    assert ids == {"train": ["d-lat", "d-pa", "d-ap"], "val": ["d-ll", "d-val"], "test": ["d-test"]}
    first = annotation["train"][1]
    assert first["report"] == FINDINGS_TEXT
    assert first["image_path"] == ["p10/p10000032/s50414267/d-pa.jpg"]
    assert first["study_id"] == "50414267"
    assert first["subject_id"] == "10000032"
    assert first["view"] == "PA"
    assert first["split"] == "train"

    reasons = {item["id"]: item["reason"] for item in manifest["dropped"]}
    assert reasons == {
        "d-noimg": "missing image: files/p11/p11000183/s52000001/d-noimg.jpg",
        "s51029426": "missing report: no report file for the study",
        "s57375967": "no section: findings text is missing or empty",
    }
    assert manifest["counts"] == {"train": 3, "val": 2, "test": 1}
    assert manifest["images"] == 6
    roles = [source["role"] for source in manifest["sources"]]
    assert roles == ["split", "metadata", "reports"]

    # The images link makes the annotation usable as is.
    studies = load_annotation(tmp_path / "out" / "annotation.json")
    kept, report = validate_studies(studies, tmp_path / "out" / "images", str.strip)
    assert report.ok
    assert report.images_decoded == 6


def test_mimic_build_frontal_per_study_both_sections(mimic_root, tmp_path):
    annotation, manifest = build(mimic_root, tmp_path / "out", "--views", "frontal", "--entry", "study",
                                 "--section", "both")
    entries = {entry["id"]: entry for split in annotation.values() for entry in split}
    assert sorted(entries) == ["50414267", "52000002", "53189527", "57375967", "57375968"]
    assert entries["50414267"]["image_path"] == ["p10/p10000032/s50414267/d-pa.jpg"]
    assert entries["50414267"]["report"] == FINDINGS_TEXT + " No acute cardiopulmonary process."
    assert entries["57375967"]["report"] == "Mild pulmonary edema."
    assert entries["57375968"]["split"] == "val"
    assert manifest["dropped_by_reason"] == {"missing image": 1, "missing report": 1, "not frontal": 2}
    assert manifest["options"]["views"] == "frontal"


def test_mimic_build_per_study_orders_frontal_first(mimic_root, tmp_path):
    annotation, _ = build(mimic_root, tmp_path / "out", "--entry", "study", "--section", "impression")
    entries = {entry["id"]: entry for split in annotation.values() for entry in split}
    assert entries["50414267"]["image_path"] == [
        "p10/p10000032/s50414267/d-pa.jpg", "p10/p10000032/s50414267/d-lat.jpg",
    ]
    assert entries["50414267"]["views"] == ["PA", "LATERAL"]
    assert entries["50414267"]["report"] == "No acute cardiopulmonary process."


def test_mimic_build_reads_reports_zip(mimic_root, tmp_path):
    archive = mimic_root / "mimic-cxr-reports.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((tmp_path / "reports").rglob("*.txt")):
            bundle.write(path, path.relative_to(tmp_path / "reports").as_posix())
    out = tmp_path / "zip-out"
    assert main(["mimic_cxr", "--root", str(mimic_root), "--out", str(out)]) == 0
    from_zip = json.loads((out / "annotation.json").read_text(encoding="utf-8"))
    from_folder, _ = build(mimic_root, tmp_path / "folder-out")
    assert from_zip == from_folder
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"][2]["path"] == str(archive)


def test_mimic_build_without_tables_fails(tmp_path, capsys):
    assert main(["mimic_cxr", "--root", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no mimic-cxr-<version>-split.csv[.gz] found" in capsys.readouterr().err
    assert not (tmp_path / "out" / "annotation.json").exists()


def test_mimic_build_rejects_foreign_images_folder(mimic_root, tmp_path, capsys):
    (tmp_path / "out" / "images").mkdir(parents=True)
    reports = mimic_root.parent / "reports"
    status = main(["mimic_cxr", "--root", str(mimic_root), "--reports", str(reports), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "exists and is not a link to" in capsys.readouterr().err
