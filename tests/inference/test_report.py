"""The static results page: per-study scores, labels, differences, thumbnails and escaping."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from pycocoevalcap.bleu.bleu import Bleu

from inference_helpers import TEST_HYPOTHESES, TEST_REPORTS

from r2gen.training.html_report import label_chips, word_diff, write_report
from r2gen.training.report_rows import read_predictions, sentence_bleu4


def row_attributes(page: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'data-([a-z0-9-]+)="([^"]*)"', match))
            for match in re.findall(r'<tr class="study"([^>]*)>', page)]


@pytest.fixture(scope="module")
def page(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    output = write_report(tiny_run, tmp_path_factory.mktemp("page") / "report.html", thumbnail_size=48)
    return output.read_text(encoding="utf-8")


def test_page_readable_by_others(tiny_run: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        output = write_report(tiny_run, tmp_path / "page.html", thumbnail_size=0, labels=False)
    finally:
        os.umask(old_umask)
    assert output.stat().st_mode & 0o777 == 0o644


def test_sentence_bleu4_matches_pycocoevalcap() -> None:
    references = list(TEST_REPORTS.values())
    hypotheses = list(TEST_HYPOTHESES.values())
    _, per_order = Bleu(4).compute_score({i: [r] for i, r in enumerate(references)},
                                         {i: [h] for i, h in enumerate(hypotheses)}, verbose=0)
    scores = sentence_bleu4(references, hypotheses)
    assert scores == pytest.approx(list(per_order[3]))
    assert scores[0] == pytest.approx(1.0)
    assert 0.3 < scores[1] < 0.9
    assert scores[2] == pytest.approx(0.0, abs=1e-6)


def test_page_has_one_row_per_prediction(page: str) -> None:
    rows = row_attributes(page)
    assert [row["id"] for row in rows] == list(TEST_REPORTS)
    assert [row["index"] for row in rows] == ["0", "1", "2"]
    assert float(rows[0]["bleu4"]) == pytest.approx(1.0, abs=1e-6)
    assert float(rows[2]["bleu4"]) == pytest.approx(0.0, abs=1e-6)


def test_page_ce_f1_from_labels(page: str) -> None:
    rows = row_attributes(page)
    # test-a: identical reports, so every label agrees.
    assert float(rows[0]["ce-f1"]) == pytest.approx(1.0)
    # test-c: "mild cardiomegaly" against an empty report, which finds nothing positive.
    assert float(rows[2]["ce-f1"]) == pytest.approx(0.0)
    assert "Cardiomegaly +/\u00b7" in page
    assert "Pleural Effusion +/+" in page


def test_page_embeds_thumbnails_with_links(page: str, dataset_root: Path) -> None:
    thumbnails = re.findall(r'<img class="thumb" src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', page)
    assert len(thumbnails) == 4
    assert (dataset_root / "images" / "test-a" / "1.jpg").resolve().as_uri() in page


def test_page_shows_metrics_and_config(page: str, tiny_run: Path) -> None:
    assert '<span class="name">BLEU_4</span> 0.2500' in page
    assert '<span class="name">best_epoch</span> 1' in page
    assert "encoder:" in page
    assert OmegaConf.load(tiny_run / "config.yaml").data.root in page


def test_word_diff_marks_changes() -> None:
    reference, hypothesis = word_diff("a large right effusion", "A small right effusion")
    assert reference == 'a <mark class="missing">large</mark> right effusion'
    assert hypothesis == 'A <mark class="added">small</mark> right effusion'
    assert word_diff("", "x")[0] == '<span class="empty">(empty)</span>'


def test_word_diff_escapes_html() -> None:
    reference, hypothesis = word_diff("<script>alert(1)</script>", "a & b")
    assert "<script>" not in reference
    assert "&lt;script&gt;" in reference
    assert "a &amp; b" in hypothesis


def test_label_chips_classify_agreement() -> None:
    chips = label_chips({"Edema": 1, "Cardiomegaly": -1, "Pneumothorax": 0},
                        {"Edema": 1, "Pleural Effusion": 1, "Pneumothorax": 1})
    assert '<span class="label agree" title="reference: positive, generated: positive">Edema +/+</span>' in chips
    assert '<span class="label missed" title="reference: uncertain, generated: not mentioned">' in chips
    assert "Cardiomegaly ?/\u00b7" in chips
    assert '<span class="label extra" title="reference: not mentioned, generated: positive">' in chips
    assert "Pleural Effusion \u00b7/+" in chips
    assert "Pneumothorax \u2212/+" in chips
    assert label_chips({}, {}) == '<span class="empty">none</span>'


def test_report_without_data_notes_missing_images(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = OmegaConf.load(run / "config.yaml")
    config.data.root = str(tmp_path / "absent")
    (run / "config.yaml").write_text(OmegaConf.to_yaml(config))
    page = write_report(run).read_text()
    assert (run / "report.html").is_file()
    assert "no images are shown because the annotation could not be read" in page
    assert "<img" not in page
    assert len(row_attributes(page)) == 3


def test_report_options_skip_images_and_labels(tiny_run: Path, tmp_path: Path) -> None:
    page = write_report(tiny_run, tmp_path / "plain.html", thumbnail_size=0, labels=False).read_text()
    assert "<img" not in page
    assert [row["ce-f1"] for row in row_attributes(page)] == ["", "", ""]


def test_report_unknown_study_noted(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with (run / "predictions" / "test.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "ghost", "reference": "a", "hypothesis": "b"}) + "\n")
    page = write_report(run, thumbnail_size=32).read_text()
    assert "study &#x27;ghost&#x27; is not in the run&#x27;s annotation" in page
    assert len(row_attributes(page)) == 4


def test_missing_or_bad_predictions_named(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="val_epoch9.jsonl"):
        write_report(tiny_run, tmp_path / "x.html", split="val_epoch9")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "reference": "r", "hypothesis": "h"}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_predictions(bad)
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        write_report(tmp_path)
