"""Tests for `python -m r2gen.data.check`: flags, Hydra configs, and every kind of bad input."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_helpers import write_gray_png
from r2gen.data.check import check_data_config, check_dataset, main


def write_dataset(root: Path, entries: dict[str, list[dict]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotation.json").write_text(json.dumps(entries), encoding="utf-8")
    return root


def entry(study_id: str, paths: list[str], report: str = "The lungs are clear.") -> dict:
    return {"id": study_id, "report": report, "image_path": paths}


@pytest.fixture
def mixed_formats_root(tmp_path) -> Path:
    """A valid dataset with one image per supported format."""
    root = tmp_path / "mixed"
    images = root / "images"
    gray = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    formats = {
        "png8/0.png": Image.fromarray(gray),
        "png16/0.png": Image.fromarray((gray.astype(np.uint16) * 16)),
        "rgb/0.png": Image.fromarray(gray).convert("RGB"),
        "rgba/0.png": Image.fromarray(gray).convert("RGBA"),
        "la/0.png": Image.fromarray(gray).convert("LA"),
        "jpeg/0.jpg": Image.fromarray(gray).convert("RGB"),
        "grayjpeg/0.jpeg": Image.fromarray(gray),
    }
    for relative, image in formats.items():
        (images / relative).parent.mkdir(parents=True, exist_ok=True)
        image.save(images / relative)
    names = sorted(formats)
    return write_dataset(root, {
        "train": [entry(name.split("/")[0], [name]) for name in names[:5]],
        "val": [entry(names[5].split("/")[0], [names[5]])],
        "test": [entry(names[6].split("/")[0], [names[6]])],
    })


def test_check_accepts_all_image_formats(mixed_formats_root, capsys):
    assert main(["--root", str(mixed_formats_root)]) == 0
    output = capsys.readouterr().out
    assert "Images decoded: 7" in output
    assert "No problems found." in output
    assert "Fingerprint: annotation:" in output


@pytest.fixture
def broken_root(tmp_path) -> Path:
    """A dataset with one entry of each kind of bad input, plus valid entries in every split."""
    root = tmp_path / "broken"
    images = root / "images"
    for name in ("good", "good2", "good3"):
        write_gray_png(images / name / "0.png")
    truncated = write_gray_png(images / "cut" / "0.png", size=(200, 200))
    truncated.write_bytes(truncated.read_bytes()[:300])
    write_gray_png(root / "outside.png")
    outside_folder = tmp_path / "elsewhere"
    write_gray_png(outside_folder / "0.png")
    os.symlink(outside_folder, images / "link")
    return write_dataset(root, {
        "train": [
            entry("good", ["good/0.png"]),
            entry("absolute", [str(images / "good" / "0.png")]),
            entry("escape", ["../outside.png"]),
            entry("symlink", ["link/0.png"]),
            entry("missing", ["nothing/0.png"]),
            entry("cut", ["cut/0.png"]),
        ],
        "val": [
            entry("good2", ["good2/0.png"]),
            entry("blank", ["good/0.png"], report="   "),
            entry("only_marks", ["good/0.png"], report="*** ;;"),
        ],
        "test": [entry("good3", ["good3/0.png"]), entry("good", ["good3/0.png"])],
    })


EXPECTED_LINES = [
    "split 'train', entry 1 (id 'absolute'), image '",
    "image path is absolute; fix: write the path relative to the image folder",
    "split 'train', entry 2 (id 'escape'), image '../outside.png': image path resolves outside the image folder",
    "split 'train', entry 3 (id 'symlink'), image 'link/0.png': image path resolves outside the image folder",
    "split 'train', entry 4 (id 'missing'), image 'nothing/0.png': image file not found",
    "split 'train', entry 5 (id 'cut'), image 'cut/0.png': image does not decode (OSError",
    "split 'val', entry 1 (id 'blank'): report is empty; fix:",
    "split 'val', entry 2 (id 'only_marks'): report is empty after cleaning",
    "split 'test', entry 1 (id 'good'): id already used at split 'train', entry 0",
]


def test_check_reports_every_bad_input(broken_root, capsys):
    status = main(["--root", str(broken_root), "--cleaning", "iu_xray"])
    assert status == 1
    error = capsys.readouterr().err
    assert "Data validation failed" in error
    assert "8 problem(s)" in error
    for line in EXPECTED_LINES:
        assert line in error


def test_check_skip_counts_dropped_entries(broken_root, capsys, caplog):
    status = main(["--root", str(broken_root), "--cleaning", "iu_xray", "--on-invalid", "skip"])
    assert status == 0
    output = capsys.readouterr().out
    assert "train: 6 entries, 1 valid, 5 invalid" in output
    assert "val: 3 entries, 1 valid, 2 invalid" in output
    assert "test: 2 entries, 1 valid, 1 invalid" in output
    assert "Skipped 8 invalid entries (on_invalid=skip)." in output
    assert "Skipped 8 invalid entries (8 problem(s)); first ids: absolute, escape, symlink, missing, cut" in caplog.text


def test_check_missing_split(tmp_path, capsys):
    root = write_dataset(tmp_path / "d", {"train": [entry("a", ["a/0.png"])], "test": []})
    write_gray_png(root / "images" / "a" / "0.png")
    assert main(["--root", str(root)]) == 2
    assert "split 'val' is missing" in capsys.readouterr().err
    assert main(["--root", str(root), "--splits", "train"]) == 0


def test_check_invalid_annotation_exit_code(tmp_path, capsys):
    root = tmp_path / "d"
    root.mkdir()
    (root / "annotation.json").write_text("[1, 2", encoding="utf-8")
    assert main(["--root", str(root)]) == 2
    assert "not valid UTF-8 JSON" in capsys.readouterr().err


def test_check_dataset_logs_manifest_fingerprint(covid_root, caplog):
    with caplog.at_level(logging.INFO, logger="r2gen.data.check"):
        checked = check_dataset(covid_root, decode_images=False)
    assert checked.fingerprint == "annotation:71fb8907d62e49696c61a8fcbf1e3a317818b82e46f69f2a28ff9a0372e3ea23"
    assert checked.fingerprint in caplog.text
    assert sum(len(items) for items in checked.studies.values()) == 214
    assert checked.report.images_decoded == 0


def test_check_composes_hydra_config(tmp_path, covid_root, monkeypatch, capsys):
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - data: covid_cxr\n  - _self_\nseed: 0\n", encoding="utf-8")
    (conf / "data" / "covid_cxr.yaml").write_text(
        "name: covid_cxr\n"
        "root: ${oc.env:R2GEN_DATA_ROOT,data}/covid_cxr_notes\n"
        "annotation: annotation.json\n"
        "image_dir: images\n"
        "cleaning: none\n"
        "on_invalid: error\n"
        "cache: false\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("R2GEN_DATA_ROOT", str(covid_root.parent))
    assert main(["data=covid_cxr", "--config-dir", str(conf)]) == 0
    output = capsys.readouterr().out
    assert "train: 150 entries, 150 valid, 0 invalid" in output
    assert "Images decoded: 214" in output
    # Overrides reach the data node.
    assert main(["data=covid_cxr", "data.annotation=absent.json", "--config-dir", str(conf)]) == 2


def test_check_data_config_requires_root():
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['root'\]"):
        check_data_config({"name": "x", "annotation": "a.json"})


def test_check_data_config_honours_decode_check(covid_root):
    config = {"name": "covid_cxr", "root": str(covid_root), "annotation": "annotation.json",
              "cleaning": "mimic_cxr", "decode_check": False}
    assert check_data_config(config).report.images_decoded == 0
    assert check_data_config(config, decode_images=True).report.images_decoded == 214
