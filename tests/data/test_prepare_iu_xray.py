"""Tests for the IU X-ray builder against the real Open-i reports and R2Gen's released annotation."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import pytest

from data_helpers import make_tar_gz
from r2gen.data.annotation import load_annotation
from r2gen.data.manifest import sha256_file
from r2gen.data.prepare import main
from r2gen.data.validate import validate_studies


@pytest.fixture
def reports_archive(iu_root) -> Path:
    return iu_root / "extras" / "NLMCXR_reports.tgz"


@pytest.fixture
def r2gen_annotation(iu_root) -> Path:
    return iu_root / "extras" / "annotation_r2gen_full_reports_only.json"


@pytest.fixture
def images_archive(iu_root, tmp_path) -> Path:
    """A small NLMCXR_png.tgz with the real images present, under their Open-i file names."""
    with (iu_root / "extras" / "image_sources.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {row["openi_filename"]: iu_root / "images" / row["r2gen_path"] for row in rows}
    assert len(files) == 4
    return make_tar_gz(tmp_path / "NLMCXR_png.tgz", files)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_iu_findings_reproduce_r2gen_exactly(reports_archive, r2gen_annotation, tmp_path, capsys):
    out = tmp_path / "iu"
    status = main([
        "iu_xray", "--reports", str(reports_archive), "--reports-only",
        "--section", "findings", "--split-from", str(r2gen_annotation), "--out", str(out),
    ])
    assert status == 0
    built = read_json(out / "annotation.json")
    expected = read_json(r2gen_annotation)
    assert {split: len(entries) for split, entries in built.items()} == {"train": 2069, "val": 296, "test": 590}
    for split in ("train", "val", "test"):
        built_reports = {entry["id"]: entry["report"] for entry in built[split]}
        expected_reports = {entry["id"]: entry["report"] for entry in expected[split]}
        assert built_reports == expected_reports
    # Order, image paths and split fields match too: the whole document is identical.
    assert built == expected

    manifest = read_json(out / "manifest.json")
    assert manifest["counts"] == {"train": 2069, "val": 296, "test": 590}
    assert manifest["dropped_by_reason"] == {"no images": 104, "no section": 450, "too few images": 446}
    assert manifest["annotation"]["sha256"] == sha256_file(out / "annotation.json")
    assert manifest["sources"][0]["sha256"] == sha256_file(reports_archive)
    assert manifest["options"]["section"] == "findings"
    assert manifest["builder_version"] == "1"
    assert "sha256" in capsys.readouterr().out


def test_iu_build_with_small_image_tarball(reports_archive, r2gen_annotation, images_archive, iu_root, tmp_path):
    out = tmp_path / "iu"
    main([
        "iu_xray", "--reports", str(reports_archive), "--images", str(images_archive),
        "--split-from", str(r2gen_annotation), "--out", str(out),
    ])
    built = read_json(out / "annotation.json")
    assert built["train"] == []
    assert built["val"] == []
    assert [entry["id"] for entry in built["test"]] == ["CXR1005_IM-0006"]
    entry = built["test"][0]
    assert entry["image_path"] == ["CXR1005_IM-0006/0.png", "CXR1005_IM-0006/1.png"]
    expected = {e["id"]: e["report"] for e in read_json(r2gen_annotation)["test"]}
    assert entry["report"] == expected["CXR1005_IM-0006"]
    for index in (0, 1):
        relative = f"CXR1005_IM-0006/{index}.png"
        assert (out / "images" / relative).read_bytes() == (iu_root / "images" / relative).read_bytes()

    manifest = read_json(out / "manifest.json")
    reasons = {item["id"]: item["reason"] for item in manifest["dropped"]}
    assert reasons["CXR1004_IM-0005"] == "missing image: CXR1004_IM-0005-1001 not in NLMCXR_png.tgz"
    assert reasons["CXR1006_IM-0007"] == "missing image: CXR1006_IM-0007-3003 not in NLMCXR_png.tgz"
    assert manifest["dropped_by_reason"]["missing image"] == 2954
    assert manifest["images"] == 2
    sources = {source["role"]: source for source in manifest["sources"]}
    assert sorted(sources) == ["images", "reports", "split_from"]
    assert sources["images"]["sha256"] == sha256_file(images_archive)
    assert sources["split_from"]["sha256"] == sha256_file(r2gen_annotation)
    # Images of dropped studies are not left behind.
    assert sorted(path.name for path in (out / "images").iterdir()) == ["CXR1005_IM-0006"]

    studies = load_annotation(out / "annotation.json")
    with pytest.raises(ValueError, match="split 'train': split has no entries"):
        validate_studies(studies, out / "images", str.strip)
    kept, report = validate_studies(studies, out / "images", str.strip, splits=["test"])
    assert report.images_decoded == 2


def test_iu_build_from_image_folder_and_rerun(reports_archive, images_archive, iu_root, tmp_path):
    folder = tmp_path / "png"
    folder.mkdir()
    with tarfile.open(images_archive) as tar:
        tar.extractall(folder, filter="data")
    out = tmp_path / "iu"
    arguments = ["iu_xray", "--reports", str(reports_archive), "--images", str(folder),
                 "--min-images", "1", "--max-images", "0", "--out", str(out)]
    main(arguments)
    first = (out / "annotation.json").read_bytes()
    main(arguments)
    assert (out / "annotation.json").read_bytes() == first
    entries = {e["id"]: e for split in read_json(out / "annotation.json").values() for e in split}
    # CXR1004_IM-0005 and CXR1006_IM-0007 each lack one of their two views, so they are dropped.
    assert sorted(entries) == ["CXR1005_IM-0006"]
    assert (out / "images" / "CXR1005_IM-0006" / "1.png").is_file()
    sources = {source["role"]: source for source in read_json(out / "manifest.json")["sources"]}
    assert sources["images"]["path"] == str(folder)
    # The checksum covers every file read, including those of studies dropped afterwards.
    assert sources["images"]["bytes"] == sum(path.stat().st_size for path in (iu_root / "images").rglob("*.png"))


def test_iu_seeded_split_is_deterministic(reports_archive, tmp_path):
    def build(seed: int, name: str) -> dict:
        main(["iu_xray", "--reports", str(reports_archive), "--reports-only", "--seed", str(seed),
              "--ratios", "0.7,0.1,0.2", "--out", str(tmp_path / name)])
        return read_json(tmp_path / name / "annotation.json")

    first, again, other = build(0, "a"), build(0, "b"), build(1, "c")
    assert first == again
    assert first != other
    counts = {split: len(entries) for split, entries in first.items()}
    assert counts == {"train": 2068, "val": 296, "test": 591}
    ids = [entry["id"] for entries in first.values() for entry in entries]
    assert len(ids) == len(set(ids)) == 2955
    for split, entries in first.items():
        assert all(entry["split"] == split for entry in entries)
    notes = read_json(tmp_path / "a" / "manifest.json")["notes"]
    assert notes == ["seeded split by report number: seed 0, ratios (0.7, 0.1, 0.2)"]


@pytest.mark.parametrize(
    ("section", "expected_report"),
    [
        ("impression", "No acute findings."),
        ("both", "Cardiac and mediastinal contours are within normal limits. The lungs are clear. "
                 "Bony structures are intact. No acute findings."),
    ],
)
def test_iu_section_option(reports_archive, tmp_path, section, expected_report):
    out = tmp_path / section
    main(["iu_xray", "--reports", str(reports_archive), "--reports-only", "--section", section, "--out", str(out)])
    entries = {e["id"]: e for split in read_json(out / "annotation.json").values() for e in split}
    assert entries["CXR1005_IM-0006"]["report"] == expected_report
    manifest = read_json(out / "manifest.json")
    assert manifest["options"]["section"] == section
    # 3,851 reports list images and 3,405 of them list two or more; the section decides the rest.
    total = sum(manifest["counts"].values())
    assert total + manifest["dropped_by_reason"].get("no section", 0) == 3405


def test_iu_requires_images_or_reports_only(reports_archive, tmp_path):
    with pytest.raises(SystemExit, match="--reports-only"):
        main(["iu_xray", "--reports", str(reports_archive), "--out", str(tmp_path)])
