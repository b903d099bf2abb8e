"""evaluate module: clinical efficacy (CheXpert-label precision, recall and F1) of generated reports."""

import datasets
import evaluate

from r2gen.evaluation.clinical import compute_ce_metrics
from r2gen.evaluation.config import EvaluationConfig
from r2gen.evaluation.labelers import build_labeler

_DESCRIPTION = """
Labels predictions and references with the same CheXpert labeler (the offline rule-based one by
default) and returns micro, macro and example-based precision, recall and F1 over the 14
observations (suffix _14) and the 5 common ones (suffix _5).
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated reports (str).
    references: list of reference reports (str), one per prediction.
    uncertain_policy: "positive" (default), "negative" or "ignore".
    labeler: "rules" (default) or "chexbert".
    chexbert_checkpoint, chexbert_tokenizer: paths, needed for labeler "chexbert".
Returns:
    dict with the ce_* keys of r2gen.evaluation.CE_KEYS.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClinicalEfficacy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self,
        predictions,
        references,
        uncertain_policy="positive",
        labeler="rules",
        chexbert_checkpoint=None,
        chexbert_tokenizer=None,
    ):
        config = EvaluationConfig(
            labeler=labeler,
            chexbert_checkpoint=chexbert_checkpoint,
            chexbert_tokenizer=chexbert_tokenizer,
            uncertain_policy=uncertain_policy,
        )
        labels = build_labeler(config).label_reports(list(references) + list(predictions))
        return compute_ce_metrics(labels[: len(references)], labels[len(references) :], uncertain_policy)
