"""Tests for r2gen.data.annotation.load_annotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2gen.data.annotation import AnnotationError, Study, load_annotation


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def entry(study_id: str, report: str = "Lungs are clear.", paths: list | None = None, **extra) -> dict:
    return {"id": study_id, "report": report, "image_path": [f"{study_id}/0.png"] if paths is None else paths, **extra}


def test_load_annotation_reads_r2gen_layout(tmp_path):
    path = write_json(tmp_path / "annotation.json", {
        "train": [entry("a", paths=["a/0.png", "a/1.png"], split="train"), entry("b")],
        "val": [entry("c")],
        "test": [entry("d", report="")],
    })
    studies = load_annotation(path)
    assert list(studies) == ["train", "val", "test"]
    assert studies["train"][0] == Study("a", "Lungs are clear.", ("a/0.png", "a/1.png"), "train")
    assert studies["train"][1].split == "train"
    assert studies["val"][0].id == "c"
    # Empty reports load; validate_studies rejects them.
    assert studies["test"][0].report == ""


def test_load_annotation_requested_splits_only(tmp_path):
    path = write_json(tmp_path / "a.json", {"train": [entry("a")], "test": [entry("b")]})
    studies = load_annotation(path, splits=["test"])
    assert list(studies) == ["test"]
    assert [study.id for study in studies["test"]] == ["b"]


def test_load_annotation_real_covid_file(covid_root):
    studies = load_annotation(covid_root / "annotation.json")
    assert {split: len(items) for split, items in studies.items()} == {"train": 150, "val": 13, "test": 51}
    assert studies["train"][0].id == "ARDSSevere"
    assert studies["train"][0].image_paths == ("ARDSSevere/0.png",)


def test_load_annotation_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"train": [', encoding="utf-8")
    with pytest.raises(AnnotationError, match="not valid UTF-8 JSON") as caught:
        load_annotation(path)
    assert str(path) in str(caught.value)


def test_load_annotation_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="annotation file not found"):
        load_annotation(tmp_path / "nope.json")


def test_load_annotation_top_level_list(tmp_path):
    path = write_json(tmp_path / "a.json", [entry("a")])
    with pytest.raises(AnnotationError, match="top level is a list"):
        load_annotation(path)


def test_load_annotation_lists_every_problem(tmp_path):
    path = write_json(tmp_path / "bad.json", {
        "train": [
            entry("ok"),
            "not an object",
            {"report": "x", "image_path": ["x.png"]},
            entry("no_images", paths=[]),
            {"id": "wrong_type", "report": 5, "image_path": "w/0.png"},
            entry("ok"),
            entry("moved", split="val"),
        ],
        "val": [entry("ok")],
    })
    with pytest.raises(AnnotationError) as caught:
        load_annotation(path)
    message = str(caught.value)
    assert str(path) in message
    assert "9 problem(s)" in message
    assert "split 'train', entry 1: is a str, expected an object" in message
    assert "split 'train', entry 2: field 'id' is missing" in message
    assert "entry 3 (id 'no_images'): field 'image_path' is an empty list" in message
    assert "entry 4 (id 'wrong_type'): field 'report' is a int" in message
    assert "entry 4 (id 'wrong_type'): field 'image_path' is a str" in message
    assert "entry 5 (id 'ok'): duplicate id, first used at split 'train', entry 0" in message
    assert "entry 6 (id 'moved'): field 'split' is 'val'" in message
    assert "split 'val', entry 0 (id 'ok'): duplicate id" in message
    assert "split 'test' is missing" in message
    assert "fix:" in message


def test_load_annotation_missing_split(tmp_path):
    path = write_json(tmp_path / "a.json", {"train": [entry("a")], "val": []})
    with pytest.raises(AnnotationError, match=r"split 'test' is missing \(top-level keys: \['train', 'val'\]\)"):
        load_annotation(path)


def test_load_annotation_split_not_list(tmp_path):
    path = write_json(tmp_path / "a.json", {"train": {"a": 1}, "val": [], "test": []})
    with pytest.raises(AnnotationError, match="split 'train' is a dict, expected a list"):
        load_annotation(path)


def test_load_annotation_caps_listing(tmp_path):
    path = write_json(tmp_path / "a.json", {"train": [entry(f"s{i}", paths=[]) for i in range(25)]})
    with pytest.raises(AnnotationError) as caught:
        load_annotation(path, splits=["train"])
    message = str(caught.value)
    assert "25 problem(s)" in message
    assert "entry 19 (id 's19')" in message
    assert "entry 20 (id 's20')" not in message
    assert "... and 5 more problem(s) not listed" in message


def test_load_annotation_keeps_duplicates_when_asked(tmp_path):
    path = write_json(tmp_path / "a.json", {"train": [entry("a")], "val": [entry("a")], "test": []})
    studies = load_annotation(path, check_duplicates=False)
    assert [study.id for study in studies["train"]] == ["a"]
    assert [study.id for study in studies["val"]] == ["a"]
