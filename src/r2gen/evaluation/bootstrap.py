"""Percentile bootstrap over studies: shared resamples and confidence intervals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def resample_indices(studies: int, samples: int, seed: int) -> np.ndarray:
    """Draw ``samples`` resamples of study indices with replacement, one row per resample.

    Every metric is recomputed on the same rows, so the intervals of different metrics come from
    the same resampled test sets.
    """
    if studies < 1:
        raise ValueError(f"bootstrap needs at least one study, got {studies}")
    return np.random.default_rng(seed).integers(0, studies, size=(samples, studies))


def percentile_intervals(
    resampled_scores: Iterable[Mapping[str, float | None]], confidence: float
) -> dict[str, dict[str, float]]:
    """Return the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of each metric.

    A metric can be None in some resamples, as CIDEr is when every resampled reference is empty.
    Its interval then comes from the other resamples, and a metric that is always None gets none.
    """
    collected: dict[str, list[float]] = {}
    for scores in resampled_scores:
        for name, value in scores.items():
            if value is not None:
                collected.setdefault(name, []).append(value)
    tail = (1.0 - confidence) / 2.0
    return {
        name: {"low": float(np.quantile(values, tail)), "high": float(np.quantile(values, 1.0 - tail))}
        for name, values in collected.items()
    }
