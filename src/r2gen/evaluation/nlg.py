"""BLEU-1..4, METEOR, ROUGE-L and CIDEr with the numbers pycocoevalcap 1.2 computes.

The strings are scored as given, split on whitespace (ROUGE-L splits on single spaces), without
the PTB tokenizer: reports are expected to be cleaned and space-separated already. Each study has
one hypothesis and one reference.

Two pycocoevalcap behaviours matter for reports and are kept as they are:
- An empty hypothesis is scored as the empty string. BLEU counts zero matched n-grams and a test
  length of 0 for it, and METEOR and CIDEr give it 0. ROUGE-L gives it 0 unless the reference is
  empty too: ``"".split(" ")`` is one empty token, so two empty strings score 1.
- CIDEr takes its document frequencies from the scored references, so it depends on which and how
  many studies are scored. With a single study every n-gram weight is 0, and so is CIDEr.

pycocoevalcap asserts that both dicts have the same keys and that every value is a one-element
list. The public functions here check the ids first and raise ValueError, and they wrap each
string in a list, so those asserts cannot fire.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider_scorer import CiderScorer
from pycocoevalcap.rouge.rouge import Rouge

from r2gen.evaluation.cider import ResampledCider
from r2gen.evaluation.meteor import MeteorProcess, MeteorUnavailableError

logger = logging.getLogger(__name__)

BLEU_KEYS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4")
NLG_KEYS = (*BLEU_KEYS, "METEOR", "ROUGE_L", "CIDEr")


def check_matching_ids(references: Mapping[str, str], hypotheses: Mapping[str, str]) -> list[str]:
    """Return the study ids in reference order, or raise ValueError naming ids found on one side only."""
    only_references = sorted(set(references) - set(hypotheses), key=str)
    only_hypotheses = sorted(set(hypotheses) - set(references), key=str)
    if only_references or only_hypotheses:
        raise ValueError(
            "references and hypotheses must have the same study ids; "
            f"ids without a hypothesis: {_preview(only_references)}; "
            f"ids without a reference: {_preview(only_hypotheses)}"
        )
    if not references:
        raise ValueError("no studies to score: references and hypotheses are empty")
    for name, texts in (("reference", references), ("hypothesis", hypotheses)):
        for study_id, text in texts.items():
            if not isinstance(text, str):
                raise ValueError(f"the {name} of study {study_id!r} is {type(text).__name__}, expected str")
    return list(references)


def _preview(ids: Sequence[str], limit: int = 10) -> str:
    if not ids:
        return "none"
    listed = ", ".join(repr(study_id) for study_id in ids[:limit])
    remaining = len(ids) - limit
    return f"{listed} and {remaining} more" if remaining > 0 else listed


class NLGScorer:
    """Scores a fixed list of (reference, hypothesis) pairs, on all studies or on a resample.

    The n-gram counts, ROUGE-L per study and METEOR statistics are computed once. ``score(indices)``
    then recomputes every corpus metric on the studies at ``indices`` (repeats allowed), which is
    what a bootstrap needs. Use it as a context manager so that the METEOR JVM stops.
    """

    def __init__(self, references: Sequence[str], hypotheses: Sequence[str], meteor: bool = True) -> None:
        if len(references) != len(hypotheses):
            raise ValueError(f"got {len(references)} references but {len(hypotheses)} hypotheses")
        if not references:
            raise ValueError("no studies to score")
        self._size = len(references)
        self._bleu = BleuScorer(n=4)
        self._cider = CiderScorer(n=4, sigma=6.0)
        for reference, hypothesis in zip(references, hypotheses):
            self._bleu += (hypothesis, [reference])
            self._cider += (hypothesis, [reference])
        rouge = Rouge()
        self._rouge = np.array([rouge.calc_score([h], [r]) for r, h in zip(references, hypotheses)])
        self._has_reference_words = [bool(reference.split()) for reference in references]
        self._resampled_cider = ResampledCider(references, hypotheses)
        self._meteor: MeteorProcess | None = None
        self._meteor_statistics: list[str] | None = None
        if meteor:
            self._start_meteor(references, hypotheses)

    def _start_meteor(self, references: Sequence[str], hypotheses: Sequence[str]) -> None:
        try:
            self._meteor = MeteorProcess()
            self._meteor_statistics = self._meteor.segment_statistics(hypotheses, [[r] for r in references])
        except MeteorUnavailableError as error:
            logger.warning("METEOR is reported as None because Java could not run the METEOR jar: %s", error)
            self.close()

    def __enter__(self) -> NLGScorer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the METEOR JVM if one is running."""
        if self._meteor is not None:
            self._meteor.close()
            self._meteor = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def meteor_available(self) -> bool:
        """Whether the METEOR JVM is running, so that ``score`` returns METEOR values."""
        return self._meteor is not None

    def score(self, indices: Sequence[int] | np.ndarray | None = None) -> dict[str, float | None]:
        """Compute every metric on the studies at ``indices`` (all studies when None).

        With ``indices`` given, CIDEr comes from the vectorised ``ResampledCider``, which equals
        pycocoevalcap up to floating-point summation order; without, from pycocoevalcap itself.
        """
        selected = list(range(self._size)) if indices is None else [int(i) for i in indices]
        scores: dict[str, float | None] = dict(zip(BLEU_KEYS, self._bleu_scores(selected)))
        scores["METEOR"] = self._meteor_score(selected)
        scores["ROUGE_L"] = float(np.mean(self._rouge[selected]))
        scores["CIDEr"] = self._cider_score(selected, exact=indices is None)
        return scores

    def _bleu_scores(self, selected: list[int]) -> list[float]:
        scorer = BleuScorer(n=4)
        scorer.crefs = [self._bleu.crefs[i] for i in selected]
        scorer.ctest = [self._bleu.ctest[i] for i in selected]
        bleus, _ = scorer.compute_score(option="closest", verbose=0)
        return [float(value) for value in bleus]

    def _cider_score(self, selected: list[int], exact: bool) -> float | None:
        if not any(self._has_reference_words[i] for i in selected):
            # pycocoevalcap raises on max() of empty document frequencies here.
            logger.warning("CIDEr is reported as None because every reference is empty")
            return None
        if not exact:
            return self._resampled_cider.score(selected)
        scorer = CiderScorer(n=4, sigma=6.0)
        scorer.crefs = [self._cider.crefs[i] for i in selected]
        scorer.ctest = [self._cider.ctest[i] for i in selected]
        score, _ = scorer.compute_score()
        return float(score)

    def _meteor_score(self, selected: list[int]) -> float | None:
        if self._meteor is None or self._meteor_statistics is None:
            return None
        try:
            score, _ = self._meteor.corpus_score([self._meteor_statistics[i] for i in selected])
        except MeteorUnavailableError as error:
            logger.warning("METEOR is reported as None because the METEOR jar stopped: %s", error)
            self.close()
            return None
        return score


def compute_nlg_metrics(references: Mapping[str, str], hypotheses: Mapping[str, str]) -> dict[str, float | None]:
    """Compute BLEU_1..BLEU_4, METEOR, ROUGE_L and CIDEr over the studies keyed by id.

    Raises ValueError when the two mappings do not have the same ids or are empty. METEOR is None,
    with a logged warning, when no working ``java`` is on PATH.
    """
    ids = check_matching_ids(references, hypotheses)
    with NLGScorer([references[i] for i in ids], [hypotheses[i] for i in ids]) as scorer:
        return scorer.score()
