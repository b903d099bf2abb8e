"""Vectorised CIDEr-D of pycocoevalcap 1.2 for bootstrap resamples.

pycocoevalcap's ``CiderScorer`` rebuilds its document frequencies and n-gram vectors in Python
for every call, about 15 ms for 51 studies, so 1000 resamples take 15 s. This class computes the
same formula with numpy over n-gram ids counted once:
- document frequency of an n-gram = number of resampled studies whose reference contains it,
  counting a study drawn twice twice, and idf = log(resample size) - log(max(1, df));
- per n-gram order, the clipped cosine sum(min(h, r) * r) / (|h| |r|) of tf-idf vectors,
  times the Gaussian length penalty exp(-delta^2 / (2 * 6^2));
- a study's score is 10 times the mean over orders 1-4, and CIDEr is the mean over the resample.
pycocoevalcap measures the "length" in the penalty as the number of bigrams, not words, because
``counts2vec`` adds term frequencies when the order index is 1. This class does the same.
Results equal ``CiderScorer`` up to floating-point summation order (tested to 1e-9).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocoevalcap.cider.cider_scorer import precook

ORDERS = 4
SIGMA = 6.0


class ResampledCider:
    """CIDEr-D of pycocoevalcap 1.2 on any resample of a fixed list of single-reference studies."""

    def __init__(self, references: Sequence[str], hypotheses: Sequence[str]) -> None:
        self._studies = len(references)
        vocabulary: dict[tuple[str, ...], int] = {}
        ref_rows, hyp_rows = [], []
        self._length_delta = np.zeros(self._studies)
        for study, (reference, hypothesis) in enumerate(zip(references, hypotheses, strict=True)):
            ref_counts = precook(reference, ORDERS)
            hyp_counts = precook(hypothesis, ORDERS)
            for ngram in (*ref_counts, *hyp_counts):
                vocabulary.setdefault(ngram, len(vocabulary))
            ref_rows += [(study, vocabulary[g], len(g) - 1, c) for g, c in ref_counts.items()]
            hyp_rows += [(study, vocabulary[g], len(g) - 1, c, ref_counts.get(g, 0)) for g, c in hyp_counts.items()]
            self._length_delta[study] = _bigram_count(hyp_counts) - _bigram_count(ref_counts)
        self._vocabulary_size = len(vocabulary)
        ref = np.array(ref_rows, dtype=np.int64).reshape(-1, 4)
        hyp = np.array(hyp_rows, dtype=np.int64).reshape(-1, 5)
        self._ref_study, self._ref_ngram, self._ref_slot, self._ref_tf = ref[:, 0], ref[:, 1], _slot(ref), ref[:, 3]
        self._hyp_ngram, self._hyp_slot, self._hyp_tf, self._hyp_ref_tf = hyp[:, 1], _slot(hyp), hyp[:, 3], hyp[:, 4]
        self._penalty = np.exp(-(self._length_delta**2) / (2 * SIGMA**2))

    def score(self, indices: Sequence[int] | np.ndarray) -> float:
        """Return CIDEr-D on the studies at ``indices`` (repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64)
        multiplicity = np.bincount(indices, minlength=self._studies).astype(float)
        document_frequency = np.bincount(
            self._ref_ngram, weights=multiplicity[self._ref_study], minlength=self._vocabulary_size
        )
        idf = np.log(float(len(indices))) - np.log(np.maximum(1.0, document_frequency))
        slots = self._studies * ORDERS
        ref_weight = self._ref_tf * idf[self._ref_ngram]
        hyp_weight = self._hyp_tf * idf[self._hyp_ngram]
        ref_in_hyp = self._hyp_ref_tf * idf[self._hyp_ngram]
        ref_norm = np.sqrt(np.bincount(self._ref_slot, weights=ref_weight**2, minlength=slots))
        hyp_norm = np.sqrt(np.bincount(self._hyp_slot, weights=hyp_weight**2, minlength=slots))
        overlap = np.bincount(
            self._hyp_slot, weights=np.minimum(hyp_weight, ref_in_hyp) * ref_in_hyp, minlength=slots
        )
        denominator = hyp_norm * ref_norm
        cosine = np.divide(overlap, denominator, out=overlap.copy(), where=denominator != 0)
        per_study = cosine.reshape(self._studies, ORDERS).mean(axis=1) * 10.0 * self._penalty
        return float(np.dot(multiplicity, per_study) / len(indices))


def _slot(rows: np.ndarray) -> np.ndarray:
    return rows[:, 0] * ORDERS + rows[:, 2]


def _bigram_count(counts: dict[tuple[str, ...], int]) -> int:
    return sum(count for ngram, count in counts.items() if len(ngram) == 2)
