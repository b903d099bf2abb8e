"""score_reports: the one scoring function used by validation, test and ``python -m r2gen.evaluate``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from r2gen.evaluation.bootstrap import percentile_intervals, resample_indices
from r2gen.evaluation.clinical import ClinicalLabels
from r2gen.evaluation.config import EvaluationConfig
from r2gen.evaluation.diagnostics import report_diagnostics
from r2gen.evaluation.labelers import build_labeler
from r2gen.evaluation.nlg import NLGScorer

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("id", "reference", "hypothesis")


def check_records(records: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError unless every record has string id, reference and hypothesis and ids are unique."""
    if not records:
        raise ValueError("no records to score; expected at least one {id, reference, hypothesis} record")
    seen: set[str] = set()
    duplicates: list[str] = []
    for index, record in enumerate(records):
        for field in RECORD_FIELDS:
            value = record.get(field) if isinstance(record, Mapping) else None
            if not isinstance(value, str):
                raise ValueError(
                    f"record {index} (id {record.get('id') if isinstance(record, Mapping) else None!r}) "
                    f"has no string field {field!r}; each record needs id, reference and hypothesis strings"
                )
        if record["id"] in seen:
            duplicates.append(record["id"])
        seen.add(record["id"])
    if duplicates:
        raise ValueError(f"duplicate study ids in records: {sorted(set(duplicates))[:10]}; ids must be unique")


def score_reports(
    records: Sequence[Mapping[str, Any]],
    config: EvaluationConfig,
    training_reports: Sequence[str] = (),
) -> dict[str, Any]:
    """Score generated reports against references as configured.

    Returns flat metrics (``BLEU_1``..``CIDEr`` and ``ce_*``; each a float or None) plus the nested
    entries ``bootstrap``, ``clinical_config``, ``clinical_per_observation`` and ``diagnostics``
    when they are enabled. The flat keys are documented in docs/clinical_efficacy.md.
    """
    check_records(records)
    references = [record["reference"] for record in records]
    hypotheses = [record["hypothesis"] for record in records]
    result: dict[str, Any] = {}
    nlg_scorer = NLGScorer(references, hypotheses) if config.nlg else None
    try:
        clinical = _clinical_labels(references, hypotheses, config) if config.clinical else None
        if nlg_scorer is not None:
            result.update(nlg_scorer.score())
        if clinical is not None:
            result.update(clinical.scores())
            result["clinical_per_observation"] = clinical.per_observation()
            result["clinical_config"] = {
                "labeler": config.labeler,
                "uncertain_policy": config.uncertain_policy,
                "chexbert_checkpoint": config.chexbert_checkpoint,
            }
        if config.bootstrap_samples > 0 and (nlg_scorer is not None or clinical is not None):
            result["bootstrap"] = _bootstrap(len(records), config, nlg_scorer, clinical)
    finally:
        if nlg_scorer is not None:
            nlg_scorer.close()
    if config.diagnostics:
        result["diagnostics"] = report_diagnostics(hypotheses, references, training_reports)
    return result


def _clinical_labels(references: list[str], hypotheses: list[str], config: EvaluationConfig) -> ClinicalLabels:
    labeler = build_labeler(config)
    labels = labeler.label_reports(references + hypotheses)
    return ClinicalLabels.from_labels(labels[: len(references)], labels[len(references) :], config.uncertain_policy)


def _bootstrap(
    studies: int, config: EvaluationConfig, nlg_scorer: NLGScorer | None, clinical: ClinicalLabels | None
) -> dict[str, Any]:
    # METEOR is recomputed exactly on each resample: the jar keeps each study's alignment
    # statistics, so a resample costs one EVAL request to the running JVM and no new alignment.
    def scores_for(indices) -> dict[str, float | None]:
        scores: dict[str, float | None] = {}
        if nlg_scorer is not None:
            scores.update(nlg_scorer.score(indices))
        if clinical is not None:
            scores.update(clinical.scores(indices))
        return scores

    resamples = resample_indices(studies, config.bootstrap_samples, config.bootstrap_seed)
    logger.info("Bootstrapping %d metrics families over %d resamples of %d studies",
                (nlg_scorer is not None) + (clinical is not None), len(resamples), studies)
    intervals = percentile_intervals((scores_for(row) for row in resamples), config.confidence)
    if nlg_scorer is not None and not nlg_scorer.meteor_available and "METEOR" in intervals:
        # The JVM stopped part-way, so the METEOR values cover only the first resamples.
        logger.warning("METEOR has no bootstrap interval because the METEOR jar stopped during the bootstrap")
        del intervals["METEOR"]
    return {
        "samples": config.bootstrap_samples,
        "seed": config.bootstrap_seed,
        "confidence": config.confidence,
        "method": "percentile, resampling studies with replacement",
        **intervals,
    }
