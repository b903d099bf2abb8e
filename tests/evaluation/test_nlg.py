"""compute_nlg_metrics against hand-computed values and against direct pycocoevalcap 1.2 calls."""

from __future__ import annotations

import logging
import math

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from r2gen.evaluation import NLG_KEYS, NLGScorer, compute_nlg_metrics
from tests.evaluation.conftest import simple_clean

# Sentences from real IU X-ray reports, cleaned: CXR2926_IM-1328 ("The lungs are clear.")
# and CXR1451_IM-0291 ("Heart size normal.", period dropped so the two share no n-gram).
LUNGS = "the lungs are clear ."
HEART = "heart size normal"


def direct_coco_scores(references: dict[str, str], hypotheses: dict[str, str], meteor) -> dict[str, float]:
    gts = {key: [text] for key, text in references.items()}
    res = {key: [text] for key, text in hypotheses.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = dict(zip(("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"), bleu))
    scores["METEOR"], _ = meteor.compute_score(gts, res)
    scores["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    scores["CIDEr"], _ = Cider().compute_score(gts, res)
    return scores


@pytest.fixture(scope="module")
def real_pairs(iu_full_annotation: dict) -> tuple[dict[str, str], dict[str, str]]:
    """30 IU X-ray test reports, each paired with the next study's report as its hypothesis.

    One hypothesis is empty and one equals its reference, so both edge cases are scored too.
    """
    studies = iu_full_annotation["test"][:30]
    references = {study["id"]: simple_clean(study["report"]) for study in studies}
    hypotheses = {
        study["id"]: simple_clean(studies[(index + 1) % len(studies)]["report"])
        for index, study in enumerate(studies)
    }
    hypotheses[studies[0]["id"]] = ""
    hypotheses[studies[1]["id"]] = references[studies[1]["id"]]
    return references, hypotheses


def test_real_pairs_match_pycocoevalcap(real_pairs, coco_meteor):
    references, hypotheses = real_pairs
    ours = compute_nlg_metrics(references, hypotheses)
    direct = direct_coco_scores(references, hypotheses, coco_meteor)

    assert tuple(ours) == NLG_KEYS
    for key in NLG_KEYS:
        assert isinstance(ours[key], float), key
        assert ours[key] == pytest.approx(direct[key], rel=1e-12, abs=1e-12), key
    # Regression values for this exact input, recorded from pycocoevalcap 1.2.
    assert ours["BLEU_1"] == pytest.approx(0.453533, abs=1e-6)
    assert ours["BLEU_4"] == pytest.approx(0.162615, abs=1e-6)
    assert ours["METEOR"] == pytest.approx(0.189038, abs=1e-6)
    assert ours["ROUGE_L"] == pytest.approx(0.362824, abs=1e-6)
    assert ours["CIDEr"] == pytest.approx(0.505226, abs=1e-6)


def test_partial_match_hand_computed():
    scores = NLGScorer([LUNGS], ["lungs are clear ."], meteor=False).score()

    # Every n-gram of the 4-word hypothesis is in the 5-word reference, so each BLEU_n is the
    # brevity penalty exp(1 - 5/4).
    for key in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"):
        assert scores[key] == pytest.approx(math.exp(-0.25), rel=1e-6), key
    # LCS 4: precision 1, recall 0.8, F with beta 1.2 = 2.44 * 0.8 / (0.8 + 1.44).
    assert scores["ROUGE_L"] == pytest.approx(2.44 * 0.8 / 2.24, rel=1e-12)
    # One study: log(N) = log(df) = 0, so every CIDEr weight is 0.
    assert scores["CIDEr"] == 0.0
    assert scores["METEOR"] is None


def test_cider_two_studies_hand_computed():
    scores = NLGScorer([LUNGS, HEART], [LUNGS, HEART], meteor=False).score()

    # Disjoint vocabularies: each n-gram has df 1, cosine 1 per n-gram order that exists.
    # LUNGS has all four orders (10); HEART has no 4-gram, so mean(1, 1, 1, 0) * 10 = 7.5.
    assert scores["CIDEr"] == pytest.approx((10.0 + 7.5) / 2, rel=1e-12)
    assert scores["ROUGE_L"] == pytest.approx(1.0)
    assert scores["BLEU_4"] == pytest.approx(1.0, rel=1e-6)


def test_empty_hypothesis_scored_not_dropped():
    # METEOR of an empty hypothesis is compared with pycocoevalcap in the real-pairs test.
    scores = NLGScorer([LUNGS, HEART], [LUNGS, ""], meteor=False).score()

    # Test length 5 against reference length 5 + 3: brevity penalty exp(1 - 8/5), precisions 1.
    for key in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"):
        assert scores[key] == pytest.approx(math.exp(-0.6), rel=1e-6), key
    assert scores["ROUGE_L"] == pytest.approx(0.5)
    assert scores["CIDEr"] == pytest.approx(5.0)


def test_both_empty_follow_pycocoevalcap():
    scores = NLGScorer(["", LUNGS], ["", LUNGS], meteor=False).score()

    # pycocoevalcap ROUGE-L splits on " ", so two empty strings share one empty token and score 1.
    assert scores["ROUGE_L"] == pytest.approx(1.0)
    assert scores["CIDEr"] == pytest.approx(5.0)


def test_all_references_empty_cider_none(caplog):
    with caplog.at_level(logging.WARNING):
        scores = NLGScorer(["", " "], ["a", ""], meteor=False).score()
    assert scores["CIDEr"] is None
    assert "every reference is empty" in caplog.text
    assert scores["BLEU_1"] == pytest.approx(0.0, abs=1e-6)


def test_mismatched_ids_named():
    with pytest.raises(ValueError, match=r"without a hypothesis: 'c'.*without a reference: 'z'"):
        compute_nlg_metrics({"a": LUNGS, "c": LUNGS}, {"a": LUNGS, "z": LUNGS})


def test_empty_and_non_string_rejected():
    with pytest.raises(ValueError, match="no studies to score"):
        compute_nlg_metrics({}, {})
    with pytest.raises(ValueError, match="hypothesis of study 'a' is NoneType"):
        compute_nlg_metrics({"a": LUNGS}, {"a": None})


def test_without_java_meteor_none(without_java, caplog):
    with caplog.at_level(logging.WARNING):
        scores = compute_nlg_metrics({"a": LUNGS, "b": HEART}, {"a": LUNGS, "b": HEART})
    assert scores["METEOR"] is None
    assert "no `java` executable on PATH" in caplog.text
    assert scores["BLEU_1"] == pytest.approx(1.0, rel=1e-6)


def test_line_break_does_not_shift_meteor(coco_meteor):
    references = {"a": LUNGS, "b": HEART, "c": LUNGS}
    broken = compute_nlg_metrics(references, {"a": "the lungs\nare clear .", "b": HEART, "c": "lungs clear"})
    flat = {"a": ["the lungs are clear ."], "b": [HEART], "c": ["lungs clear"]}
    direct, _ = coco_meteor.compute_score({key: [text] for key, text in references.items()}, flat)
    assert broken["METEOR"] == pytest.approx(direct, abs=1e-12)
    assert 0.0 < broken["METEOR"] < 1.0


def test_resample_indices_recompute_corpus():
    scorer = NLGScorer([LUNGS, HEART], [LUNGS, ""], meteor=False)
    only_first = scorer.score([0, 0])
    assert only_first["BLEU_4"] == pytest.approx(1.0, rel=1e-6)
    assert only_first["ROUGE_L"] == pytest.approx(1.0)
    # The resample has two copies of one study, so each n-gram has df 2 = N and weight 0.
    assert only_first["CIDEr"] == 0.0
    assert scorer.score([1])["ROUGE_L"] == 0.0
