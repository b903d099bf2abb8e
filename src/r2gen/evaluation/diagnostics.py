"""Report diagnostics: degenerate generations that n-gram metrics do not show.

A word is a whitespace-separated token with at least one letter or digit, so the " ." tokens of
cleaned reports are not words. Sentences are split at ".", "!", "?" and ";".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"[.!?;]+")
_HAS_ALNUM = re.compile(r"[^\W_]")


def _words(text: str) -> list[str]:
    return [token for token in text.split() if _HAS_ALNUM.search(token)]


def _sentences(text: str) -> list[str]:
    sentences = (" ".join(_words(part)) for part in _SENTENCE_END.split(text.lower()))
    return [sentence for sentence in sentences if sentence]


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _distinct(hypotheses: Sequence[list[str]], n: int) -> float | None:
    ngrams = [tuple(words[i : i + n]) for words in hypotheses for i in range(len(words) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else None


def report_diagnostics(
    hypotheses: Sequence[str], references: Sequence[str], training_reports: Sequence[str] = ()
) -> dict[str, float | int | None]:
    """Compute generation diagnostics over all hypotheses.

    - ``empty_generation_count`` / ``empty_generation_rate``: hypotheses without a word.
    - ``mean_hypothesis_words`` / ``mean_reference_words``: mean word counts.
    - ``repeated_sentence_rate``: share of hypothesis sentences that repeat an earlier sentence of
      the same hypothesis (after lowercasing).
    - ``distinct_1`` / ``distinct_2``: unique unigrams (bigrams) over all unigrams (bigrams) of all
      hypotheses; None when there are none.
    - ``training_copy_count`` / ``training_copy_rate``: hypotheses equal to a training report
      after collapsing whitespace; None when no training reports are given.
    """
    if not hypotheses:
        raise ValueError("report diagnostics need at least one hypothesis")
    hypothesis_words = [_words(text) for text in hypotheses]
    empty = sum(1 for words in hypothesis_words if not words)
    sentence_count = repeated = 0
    for text in hypotheses:
        sentences = _sentences(text)
        sentence_count += len(sentences)
        repeated += len(sentences) - len(set(sentences))
    training = {_normalize(text) for text in training_reports}
    copies = sum(1 for text in hypotheses if _normalize(text) in training) if training else None
    return {
        "studies": len(hypotheses),
        "empty_generation_count": empty,
        "empty_generation_rate": empty / len(hypotheses),
        "mean_hypothesis_words": sum(map(len, hypothesis_words)) / len(hypotheses),
        "mean_reference_words": sum(len(_words(text)) for text in references) / max(len(references), 1),
        "repeated_sentence_rate": repeated / sentence_count if sentence_count else 0.0,
        "distinct_1": _distinct(hypothesis_words, 1),
        "distinct_2": _distinct(hypothesis_words, 2),
        "training_copy_count": copies,
        "training_copy_rate": None if copies is None else copies / len(hypotheses),
    }
