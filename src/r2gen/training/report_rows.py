"""The per-study content of a run's results page: scores, CheXpert labels and image thumbnails.

Per-study BLEU-4 comes straight from pycocoevalcap 1.2's ``BleuScorer``, because
``r2gen.evaluation`` has no per-study BLEU function. Its ``compute_score`` returns a sentence-level
score per study beside the corpus score. As in ``r2gen.evaluation.nlg``, the strings are split on whitespace
without the PTB tokenizer, and the "closest" reference length is used. The mean of these
sentence-level scores is not the corpus BLEU-4 of ``metrics.json``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pycocoevalcap.bleu.bleu_scorer import BleuScorer

from r2gen.data.annotation import AnnotationError, load_annotation
from r2gen.data.images import ImageDecodeError, load_image
from r2gen.evaluation.clinical import ClinicalLabels
from r2gen.evaluation.config import EvaluationConfig
from r2gen.evaluation.labelers import build_labeler
from r2gen.evaluation.labels import ReportLabels

log = logging.getLogger(__name__)

PREDICTION_FIELDS = ("id", "reference", "hypothesis")


@dataclass
class StudyRow:
    """One row of the results page."""

    id: str
    reference: str
    hypothesis: str
    bleu4: float
    ce_f1: float | None = None
    reference_labels: ReportLabels = field(default_factory=dict)
    hypothesis_labels: ReportLabels = field(default_factory=dict)
    images: list[tuple[Path, str]] = field(default_factory=list)  # (original file, thumbnail data URI)


def read_predictions(path: Path) -> list[dict[str, str]]:
    """Read a predictions JSONL (id, reference, hypothesis per line), naming the line of any bad entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions file not found; fix: let the run finish its test "
                                "split, or pass the split whose predictions exist (e.g. --split val_epoch1)")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: invalid JSON ({error})") from error
        if not isinstance(record, dict) or not all(isinstance(record.get(key), str) for key in PREDICTION_FIELDS):
            raise ValueError(f"{path}, line {number}: expected an object with string fields {list(PREDICTION_FIELDS)}")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: the predictions file is empty")
    return records


def sentence_bleu4(references: Sequence[str], hypotheses: Sequence[str]) -> list[float]:
    """Return pycocoevalcap's sentence-level BLEU-4 of each (reference, hypothesis) pair."""
    scorer = BleuScorer(n=4)
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        scorer += (hypothesis, [reference])
    _, per_order = scorer.compute_score(option="closest", verbose=0)
    return [float(value) for value in per_order[3]]


def evaluation_settings(config: DictConfig) -> EvaluationConfig:
    """Return the run's evaluation settings, or the defaults (rule-based labeler) when it has none."""
    node = OmegaConf.select(config, "evaluation")
    if node is None:
        return EvaluationConfig()
    values = {key: value for key, value in OmegaConf.to_container(node, resolve=True).items()
              if not key.startswith("_")}
    return EvaluationConfig(**values)


def clinical_labels(references: Sequence[str], hypotheses: Sequence[str],
                    settings: EvaluationConfig) -> tuple[list[ReportLabels], list[ReportLabels], list[float]]:
    """Label both reports of every study; return both label lists and each study's CE F1 (14 observations).

    The per-study F1 is the one ``r2gen.evaluation`` averages into ``ce_f1_example_14``, under the
    run's uncertain policy. A study without a positive label in either report scores 0.
    """
    labeler = build_labeler(settings)
    labels = labeler.label_reports(list(references) + list(hypotheses))
    reference_labels, hypothesis_labels = labels[: len(references)], labels[len(references):]
    matrix = ClinicalLabels.from_labels(reference_labels, hypothesis_labels, settings.uncertain_policy)
    f1 = [matrix.scores([index])["ce_f1_example_14"] for index in range(len(references))]
    return reference_labels, hypothesis_labels, f1


def study_images(config: DictConfig, split: str) -> tuple[dict[str, list[Path]], str | None]:
    """Map study ids to image files through the run's annotation; return a note instead when it is unreadable."""
    root = OmegaConf.select(config, "data.root")
    if root is None:
        return {}, "the run's config has no data.root, so no images are shown"
    annotation = Path(root) / OmegaConf.select(config, "data.annotation", default="annotation.json")
    image_root = Path(root) / OmegaConf.select(config, "data.image_dir", default="images")
    split_name = "test" if split == "test" else "val"
    try:
        studies = load_annotation(annotation, splits=[split_name])[split_name]
    except AnnotationError as error:
        log.warning("no thumbnails: %s", error)
        return {}, f"no images are shown because the annotation could not be read: {error}"
    return {study.id: [image_root / path for path in study.image_paths] for study in studies}, None


def thumbnail_data_uri(path: Path, size: int) -> str:
    """Return a JPEG thumbnail of the image, at most ``size`` pixels a side, as a data URI."""
    image = load_image(path)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attach_thumbnails(rows: Sequence[StudyRow], paths_by_id: dict[str, list[Path]], size: int) -> list[str]:
    """Fill each row's images; return one note per study or file that has no thumbnail."""
    notes = []
    for row in rows:
        paths = paths_by_id.get(row.id)
        if paths is None:
            notes.append(f"study {row.id!r} is not in the run's annotation")
            continue
        for path in paths:
            try:
                row.images.append((path, thumbnail_data_uri(path, size)))
            except ImageDecodeError as error:
                notes.append(str(error))
    return notes


def build_rows(records: Sequence[dict[str, str]], config: DictConfig, split: str, thumbnail_size: int | None,
               labels: bool = True) -> tuple[list[StudyRow], list[str]]:
    """Score, label and illustrate each prediction record; return the rows and notes for the page.

    ``thumbnail_size`` None or 0 leaves the images out; ``labels=False`` skips the CheXpert labeler.
    """
    references = [record["reference"] for record in records]
    hypotheses = [record["hypothesis"] for record in records]
    bleu = sentence_bleu4(references, hypotheses)
    rows = [StudyRow(record["id"], record["reference"], record["hypothesis"], score)
            for record, score in zip(records, bleu)]
    notes: list[str] = []
    if labels:
        settings = evaluation_settings(config)
        reference_labels, hypothesis_labels, f1 = clinical_labels(references, hypotheses, settings)
        for row, ref, hyp, score in zip(rows, reference_labels, hypothesis_labels, f1):
            row.reference_labels, row.hypothesis_labels, row.ce_f1 = ref, hyp, score
    if thumbnail_size:
        paths_by_id, note = study_images(config, split)
        notes.extend([note] if note else attach_thumbnails(rows, paths_by_id, thumbnail_size))
    return rows, notes


def read_metrics(path: Path) -> dict[str, Any] | None:
    """Return the run's metrics.json, or None when the run did not write one."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
