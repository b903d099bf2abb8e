"""Bootstrap resampling: exact metrics on each resample and reproducible intervals."""

from __future__ import annotations

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from r2gen.evaluation.bootstrap import percentile_intervals, resample_indices
from r2gen.evaluation.cider import ResampledCider
from r2gen.evaluation.meteor import MeteorProcess
from r2gen.evaluation.nlg import NLGScorer
from tests.evaluation.conftest import simple_clean


@pytest.fixture(scope="module")
def report_pairs(iu_full_annotation: dict) -> tuple[list[str], list[str]]:
    """40 IU X-ray training reports, each paired with the report 3 places later; one empty each."""
    references = [simple_clean(study["report"]) for study in iu_full_annotation["train"][:40]]
    hypotheses = references[3:] + references[:3]
    hypotheses[5] = ""
    references[7] = ""
    return references, hypotheses


def coco_scores_on(references: list[str], hypotheses: list[str], indices) -> dict[str, float]:
    # Resampled studies become distinct keys, as the same study drawn twice is two segments.
    gts = {f"{n}": [references[i]] for n, i in enumerate(indices)}
    res = {f"{n}": [hypotheses[i]] for n, i in enumerate(indices)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {
        "BLEU_1": bleu[0],
        "BLEU_4": bleu[3],
        "ROUGE_L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
    }


def test_resample_matches_pycocoevalcap(report_pairs):
    references, hypotheses = report_pairs
    indices = resample_indices(len(references), 1, seed=3)[0]
    assert len(set(indices.tolist())) < len(indices)  # the resample has repeats

    ours = NLGScorer(references, hypotheses, meteor=False).score(indices)
    direct = coco_scores_on(references, hypotheses, indices)
    for name, value in direct.items():
        assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_meteor_statistics_reuse_exact(report_pairs):
    references, hypotheses = report_pairs
    indices = resample_indices(len(references), 1, seed=3)[0]
    with MeteorProcess() as meteor:
        statistics = meteor.segment_statistics(hypotheses, [[reference] for reference in references])
        reused, _ = meteor.corpus_score([statistics[i] for i in indices])
        realigned_statistics = meteor.segment_statistics(
            [hypotheses[i] for i in indices], [[references[i]] for i in indices]
        )
        realigned, segments = meteor.corpus_score(realigned_statistics)
    assert reused == realigned
    assert len(segments) == len(indices)
    assert 0.0 < reused < 1.0


def test_resampled_cider_matches_scorer(report_pairs):
    references, hypotheses = report_pairs
    fast = ResampledCider(references, hypotheses)
    scorer = NLGScorer(references, hypotheses, meteor=False)
    for row in resample_indices(len(references), 25, seed=11):
        exact = scorer._cider_score(row.tolist(), exact=True)
        assert fast.score(row) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert fast.score(np.arange(len(references))) == pytest.approx(scorer.score()["CIDEr"], rel=1e-12)


def test_resample_indices_seeded():
    first = resample_indices(10, 5, seed=7)
    assert first.shape == (5, 10)
    assert first.min() >= 0
    assert first.max() <= 9
    np.testing.assert_array_equal(first, resample_indices(10, 5, seed=7))
    assert not np.array_equal(first, resample_indices(10, 5, seed=8))
    with pytest.raises(ValueError, match="at least one study"):
        resample_indices(0, 5, seed=7)


def test_percentile_intervals_values():
    resamples = [{"a": float(value), "b": None} for value in range(101)]
    intervals = percentile_intervals(resamples, confidence=0.9)
    assert intervals["a"] == {"low": pytest.approx(5.0), "high": pytest.approx(95.0)}
    assert "b" not in intervals
