"""Tests for r2gen.data.validate.validate_studies: one test per kind of bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from data_helpers import write_gray_png
from r2gen.data.annotation import Study, load_annotation
from r2gen.data.validate import DataValidationError, validate_studies


def strip_clean(text: str) -> str:
    return text.strip()


def drop_xxxx_clean(text: str) -> str:
    return text.replace("XXXX", "").strip()


@pytest.fixture
def image_root(tmp_path) -> Path:
    root = tmp_path / "images"
    for index, name in enumerate(["a", "b", "c", "d"]):
        write_gray_png(root / name / "0.png", seed=index)
    return root


def study(study_id: str, split: str = "train", report: str = "Heart size normal.", paths=None) -> Study:
    return Study(study_id, report, tuple(paths or [f"{study_id}/0.png"]), split)


def good_studies() -> dict[str, list[Study]]:
    return {
        "train": [study("a"), study("b")],
        "val": [study("c", "val")],
        "test": [study("d", "test")],
    }


def test_validate_clean_dataset_passes(image_root):
    kept, report = validate_studies(good_studies(), image_root, strip_clean)
    assert kept == good_studies()
    assert report.ok
    assert report.images_decoded == 4
    assert report.counts["train"].total == 2
    assert report.counts["train"].valid == 2
    assert "No problems found." in report.summary()
    assert "train: 2 entries, 2 valid, 0 invalid" in report.summary()


def bad_case(image_root: Path, kind: str) -> tuple[Study, str]:
    """Return a bad train study of the given kind and a fragment its problem must contain."""
    if kind == "absolute_path":
        return study("x", paths=[str(image_root / "a" / "0.png")]), "image path is absolute"
    if kind == "outside_root":
        write_gray_png(image_root.parent / "secret.png")
        return study("x", paths=["../secret.png"]), "resolves outside the image folder"
    if kind == "symlink_escape":
        outside = write_gray_png(image_root.parent / "elsewhere" / "0.png")
        os.symlink(outside.parent, image_root / "link")
        return study("x", paths=["link/0.png"]), "resolves outside the image folder"
    if kind == "missing_image":
        return study("x", paths=["a/9.png"]), "image file not found"
    if kind == "decode":
        data = (image_root / "a" / "0.png").read_bytes()
        (image_root / "x").mkdir()
        (image_root / "x" / "0.png").write_bytes(data[: len(data) // 2])
        return study("x"), "image does not decode (OSError"
    if kind == "empty_report":
        return study("x", report="  \n", paths=["a/0.png"]), "report is empty"
    if kind == "empty_after_cleaning":
        return study("x", report="XXXX XXXX", paths=["a/0.png"]), "report is empty after cleaning"
    if kind == "duplicate_id":
        return study("a", paths=["b/0.png"]), "id already used at split 'train', entry 0"
    raise AssertionError(kind)


BAD_KINDS = [
    "absolute_path", "outside_root", "symlink_escape", "missing_image", "decode",
    "empty_report", "empty_after_cleaning", "duplicate_id",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_validate_error_names_bad_entry(image_root, kind):
    bad, fragment = bad_case(image_root, kind)
    studies = good_studies()
    studies["train"].append(bad)
    with pytest.raises(DataValidationError) as caught:
        validate_studies(studies, image_root, drop_xxxx_clean)
    report = caught.value.report
    assert len(report.problems) == 1
    assert report.skipped == 0
    assert report.counts["train"].invalid == 1
    problem = report.problems[0]
    expected_kind = "outside_root" if kind == "symlink_escape" else kind
    assert problem.kind == expected_kind
    assert problem.split == "train"
    assert problem.index == 2
    assert problem.study_id == bad.id
    assert fragment in problem.cause
    message = str(caught.value)
    assert f"split 'train', entry 2 (id '{bad.id}')" in message
    assert "fix:" in message


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_validate_skip_drops_bad_entry(image_root, kind, caplog):
    bad, _ = bad_case(image_root, kind)
    studies = good_studies()
    studies["train"].append(bad)
    with caplog.at_level(logging.WARNING, logger="r2gen.data.validate"):
        kept, report = validate_studies(studies, image_root, drop_xxxx_clean, on_invalid="skip")
    assert kept == good_studies()
    assert report.skipped == 1
    assert report.counts["train"].invalid == 1
    assert "train: 3 entries, 2 valid, 1 invalid" in report.summary()
    assert "Skipped 1 invalid entry (on_invalid=skip)." in report.summary()
    assert f"Skipped 1 invalid entry (1 problem(s)); first ids: {bad.id}" in caplog.text


def test_validate_collects_all_problems(image_root):
    studies = good_studies()
    studies["train"] += [study("m1", paths=["nope/0.png"]), study("m2", report="", paths=["a/0.png"])]
    studies["test"].append(study("m3", "test", paths=["/abs.png"]))
    with pytest.raises(DataValidationError) as caught:
        validate_studies(studies, image_root, strip_clean)
    kinds = caught.value.report.problem_counts()
    assert kinds == {"missing_image": 1, "empty_report": 1, "absolute_path": 1}
    assert "3 problem(s)" in str(caught.value)


@pytest.mark.parametrize("on_invalid", ["error", "skip"])
def test_validate_empty_split_always_raises(image_root, on_invalid):
    studies = good_studies()
    studies["val"] = []
    with pytest.raises(DataValidationError, match="split 'val': split has no entries"):
        validate_studies(studies, image_root, strip_clean, on_invalid=on_invalid)


def test_validate_missing_required_split(image_root):
    studies = good_studies()
    del studies["test"]
    with pytest.raises(DataValidationError, match="split 'test': split is missing"):
        validate_studies(studies, image_root, strip_clean, splits=["train", "val", "test"])


def test_validate_skip_that_empties_split_raises(image_root):
    studies = good_studies()
    studies["val"] = [study("v", "val", paths=["gone.png"])]
    with pytest.raises(DataValidationError, match=r"skipping would leave split\(s\) \['val'\] empty"):
        validate_studies(studies, image_root, strip_clean, on_invalid="skip")


def test_validate_without_decoding_passes_truncated_file(image_root):
    bad, _ = bad_case(image_root, "decode")
    studies = good_studies()
    studies["train"].append(bad)
    kept, report = validate_studies(studies, image_root, strip_clean, decode_images=False)
    assert len(kept["train"]) == 3
    assert report.images_decoded == 0


def test_validate_shared_image_decoded_once(image_root):
    studies = good_studies()
    studies["train"].append(study("again", paths=["a/0.png"]))
    _, report = validate_studies(studies, image_root, strip_clean)
    assert report.images_decoded == 4


def test_validate_rejects_unknown_on_invalid(image_root):
    with pytest.raises(ValueError, match="on_invalid='ignore' is invalid"):
        validate_studies(good_studies(), image_root, strip_clean, on_invalid="ignore")


def test_validate_missing_image_root(tmp_path):
    with pytest.raises(DataValidationError, match="Image folder .* not found"):
        validate_studies(good_studies(), tmp_path / "nowhere", strip_clean)


def test_validate_real_covid_dataset(covid_root):
    studies = load_annotation(covid_root / "annotation.json")
    kept, report = validate_studies(studies, covid_root / "images", strip_clean)
    assert report.ok
    assert report.images_decoded == 214
    assert sum(len(items) for items in kept.values()) == 214
