"""evaluate module: diagnostics of generated reports (empty outputs, repetition, diversity, copies)."""

import datasets
import evaluate

from r2gen.evaluation.diagnostics import report_diagnostics

_DESCRIPTION = """
Empty-generation rate, mean words of predictions and references, repeated-sentence rate,
distinct-1, distinct-2 and the share of predictions identical to a training report.
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated reports (str).
    references: list of reference reports (str), one per prediction.
    training_reports: optional list of training reports (str) for the copy rate.
Returns:
    dict of r2gen.evaluation.report_diagnostics.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReportDiagnostics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, training_reports=()):
        return report_diagnostics(list(predictions), list(references), list(training_reports))
