"""Report-generation metrics: NLG scores (pycocoevalcap 1.2), clinical efficacy and diagnostics.

This package imports nothing from ``r2gen.data``, ``r2gen.models`` or ``r2gen.training``.
"""

from r2gen.evaluation.ablation import compare_scores
from r2gen.evaluation.clinical import CE_KEYS, ClinicalLabels, compute_ce_metrics
from r2gen.evaluation.config import EvaluationConfig
from r2gen.evaluation.diagnostics import report_diagnostics
from r2gen.evaluation.labels import COMMON_OBSERVATIONS, OBSERVATIONS
from r2gen.evaluation.nlg import NLG_KEYS, NLGScorer, compute_nlg_metrics
from r2gen.evaluation.predictions import PredictionsFormatError, read_predictions, write_json_atomic
from r2gen.evaluation.rules_labeler import RuleBasedLabeler
from r2gen.evaluation.scoring import score_reports

__all__ = [
    "CE_KEYS",
    "COMMON_OBSERVATIONS",
    "ClinicalLabels",
    "EvaluationConfig",
    "NLGScorer",
    "NLG_KEYS",
    "OBSERVATIONS",
    "PredictionsFormatError",
    "RuleBasedLabeler",
    "compare_scores",
    "compute_ce_metrics",
    "compute_nlg_metrics",
    "read_predictions",
    "report_diagnostics",
    "score_reports",
    "write_json_atomic",
]
