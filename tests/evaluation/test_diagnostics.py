"""report_diagnostics on small hand-counted inputs."""

from __future__ import annotations

import pytest

from r2gen.evaluation import report_diagnostics


def test_hand_counted_values():
    hypotheses = [
        "the heart is normal . the heart is normal . no effusion .",
        "",
        " . ",
        "the lungs are clear .",
    ]
    references = ["heart normal .", "no effusion .", "clear lungs .", "the lungs are clear ."]
    training = ["the  lungs are clear .", "something else ."]
    result = report_diagnostics(hypotheses, references, training)

    assert result["studies"] == 4
    # "" and " . " have no word.
    assert result["empty_generation_count"] == 2
    assert result["empty_generation_rate"] == 0.5
    # 10 + 0 + 0 + 4 words; references 2 + 2 + 2 + 4.
    assert result["mean_hypothesis_words"] == pytest.approx(14 / 4)
    assert result["mean_reference_words"] == pytest.approx(10 / 4)
    # Sentences: 3 in the first hypothesis (one repeated) and 1 in the last.
    assert result["repeated_sentence_rate"] == pytest.approx(1 / 4)
    # Unigrams: the heart is normal the heart is normal no effusion the lungs are clear -> 14 tokens,
    # 9 distinct (the, heart, is, normal, no, effusion, lungs, are, clear).
    assert result["distinct_1"] == pytest.approx(9 / 14)
    # Bigrams: 9 in the first, 3 in the last = 12; distinct: the-heart, heart-is, is-normal,
    # normal-the, normal-no, no-effusion, the-lungs, lungs-are, are-clear = 9.
    assert result["distinct_2"] == pytest.approx(9 / 12)
    # Whitespace is collapsed before comparing with training reports.
    assert result["training_copy_count"] == 1
    assert result["training_copy_rate"] == 0.25


def test_without_training_reports():
    result = report_diagnostics(["a b"], ["c"])
    assert result["training_copy_count"] is None
    assert result["training_copy_rate"] is None


def test_all_empty_hypotheses():
    result = report_diagnostics(["", ""], ["a", "b"])
    assert result["empty_generation_rate"] == 1.0
    assert result["distinct_1"] is None
    assert result["distinct_2"] is None
    assert result["repeated_sentence_rate"] == 0.0


def test_no_hypotheses_rejected():
    with pytest.raises(ValueError, match="at least one hypothesis"):
        report_diagnostics([], [])
