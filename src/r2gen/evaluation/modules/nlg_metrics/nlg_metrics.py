"""evaluate module: BLEU-1..4, METEOR, ROUGE-L and CIDEr as pycocoevalcap 1.2 computes them."""

import datasets
import evaluate

from r2gen.evaluation.nlg import compute_nlg_metrics

_DESCRIPTION = """
Corpus BLEU-1..4 ("closest" reference length), METEOR 1.5, ROUGE-L (beta 1.2) and CIDEr-D of
pycocoevalcap 1.2 on whitespace-tokenised, already cleaned reports (no PTB tokenizer). One
reference per prediction. METEOR is None when Java is not available.
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated reports (str).
    references: list of reference reports (str), one per prediction.
Returns:
    dict with BLEU_1, BLEU_2, BLEU_3, BLEU_4, METEOR, ROUGE_L and CIDEr.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NlgMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        ids = [str(index) for index in range(len(predictions))]
        return compute_nlg_metrics(dict(zip(ids, references)), dict(zip(ids, predictions)))
