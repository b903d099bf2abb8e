"""Clinical efficacy (CE): precision, recall and F1 of labels of generated against reference reports.

Both reports of a study are labelled with the same CheXpert labeler. A cell (study, observation)
is positive when the label is 1, or -1 under the uncertain policy "positive". Blank and 0 are
negative. Under the policy "ignore" a cell is left out when either report's label is -1.

Averages, each over the 14 observations (suffix ``_14``) and the 5 common ones (``_5``):
- micro: one precision, recall and F1 from the true and false positives summed over all cells;
- macro: the unweighted mean of the per-observation precision, recall and F1;
- example: the mean over studies of each study's precision, recall and F1.
A ratio with a zero denominator counts as 0, which is what scikit-learn's
``precision_recall_fscore_support(..., zero_division=0)`` returns. So in the example average a
study with no positive cell in either report scores 0, not 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from r2gen.evaluation.labels import COMMON_OBSERVATIONS, OBSERVATIONS, POSITIVE, UNCERTAIN, ReportLabels

AVERAGES = ("micro", "macro", "example")
SUBSETS = {"14": OBSERVATIONS, "5": COMMON_OBSERVATIONS}
CE_KEYS = tuple(
    f"ce_{metric}_{average}_{subset}"
    for subset in SUBSETS
    for average in AVERAGES
    for metric in ("precision", "recall", "f1")
)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


@dataclass(frozen=True)
class ClinicalLabels:
    """Binary reference and hypothesis labels (studies x 14 observations) and the cells that count."""

    reference: np.ndarray
    hypothesis: np.ndarray
    valid: np.ndarray

    @classmethod
    def from_labels(
        cls, references: Sequence[ReportLabels], hypotheses: Sequence[ReportLabels], uncertain_policy: str
    ) -> ClinicalLabels:
        if len(references) != len(hypotheses):
            raise ValueError(f"got labels for {len(references)} references but {len(hypotheses)} hypotheses")
        reference_raw = _label_matrix(references)
        hypothesis_raw = _label_matrix(hypotheses)
        positive_values = [POSITIVE, UNCERTAIN] if uncertain_policy == "positive" else [POSITIVE]
        valid = np.ones(reference_raw.shape, dtype=bool)
        if uncertain_policy == "ignore":
            valid = (reference_raw != UNCERTAIN) & (hypothesis_raw != UNCERTAIN)
        elif uncertain_policy not in ("positive", "negative"):
            raise ValueError(f"uncertain policy {uncertain_policy!r} is invalid; use positive, negative or ignore")
        return cls(np.isin(reference_raw, positive_values), np.isin(hypothesis_raw, positive_values), valid)

    def scores(self, indices: Sequence[int] | np.ndarray | None = None) -> dict[str, float]:
        """Compute every ``CE_KEYS`` metric on the studies at ``indices`` (all when None)."""
        rows = slice(None) if indices is None else np.asarray(indices, dtype=int)
        result: dict[str, float] = {}
        for subset, names in SUBSETS.items():
            columns = [OBSERVATIONS.index(name) for name in names]
            reference = self.reference[rows][:, columns]
            hypothesis = self.hypothesis[rows][:, columns]
            valid = self.valid[rows][:, columns]
            tp = reference & hypothesis & valid
            fp = ~reference & hypothesis & valid
            fn = reference & ~hypothesis & valid
            averages = {
                "micro": _scores(tp.sum(), fp.sum(), fn.sum()),
                "macro": [values.mean() for values in _scores(tp.sum(0), fp.sum(0), fn.sum(0))],
                "example": [values.mean() for values in _scores(tp.sum(1), fp.sum(1), fn.sum(1))],
            }
            for average, (precision, recall, f1) in averages.items():
                result[f"ce_precision_{average}_{subset}"] = float(precision)
                result[f"ce_recall_{average}_{subset}"] = float(recall)
                result[f"ce_f1_{average}_{subset}"] = float(f1)
        return {key: result[key] for key in CE_KEYS}

    def per_observation(self) -> dict[str, dict[str, float]]:
        """Return precision, recall, F1 and support (reference positives) of each observation."""
        tp = (self.reference & self.hypothesis & self.valid).sum(0)
        fp = (~self.reference & self.hypothesis & self.valid).sum(0)
        fn = (self.reference & ~self.hypothesis & self.valid).sum(0)
        precision, recall, f1 = _scores(tp, fp, fn)
        return {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(tp[i] + fn[i]),
            }
            for i, name in enumerate(OBSERVATIONS)
        }


def _label_matrix(labels: Sequence[ReportLabels]) -> np.ndarray:
    matrix = np.zeros((len(labels), len(OBSERVATIONS)), dtype=int)
    for row, report in enumerate(labels):
        for column, name in enumerate(OBSERVATIONS):
            value = report.get(name)
            if value not in (None, POSITIVE, 0, UNCERTAIN):
                raise ValueError(f"label {value!r} for {name!r} in report {row} is invalid; expected 1, 0, -1 or None")
            # Blank counts as negative; 2 marks blank so that it stays distinct from -1 and 1.
            matrix[row, column] = 2 if value is None else value
    return matrix


def compute_ce_metrics(
    reference_labels: Sequence[ReportLabels],
    hypothesis_labels: Sequence[ReportLabels],
    uncertain_policy: str = "positive",
) -> dict[str, float]:
    """Compute CE precision, recall and F1 (micro, macro, example; 14 and 5 observations)."""
    return ClinicalLabels.from_labels(reference_labels, hypothesis_labels, uncertain_policy).scores()
