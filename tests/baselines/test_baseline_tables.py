"""Markdown tables, margins and tracker scalars of baseline results."""

from __future__ import annotations

import pytest

from r2gen.training.baseline_tables import (comparison_table, format_cell, margins, markdown_table,
                                            metric_and_diagnostic_tables, run_summary_scalars)

RUN = {"BLEU_1": 0.30, "BLEU_4": 0.05, "ROUGE_L": 0.25, "CIDEr": 0.20, "METEOR": None,
       "bootstrap": {"BLEU_4": {"low": 0.01, "high": 0.09}},
       "diagnostics": {"empty_generation_rate": 0.0, "mean_hypothesis_words": 40.5, "training_copy_rate": 0.25}}
SYSTEMS = {
    "most_frequent": {"BLEU_1": 0.14, "BLEU_4": 0.01, "ROUGE_L": 0.13, "CIDEr": 0.004, "METEOR": 0.10,
                      "diagnostics": {"training_copy_rate": 1.0}},
    "nearest_neighbour": {"BLEU_1": 0.22, "BLEU_4": 0.02, "ROUGE_L": 0.17, "CIDEr": 0.30, "METEOR": 0.08},
}


def test_format_cell_variants():
    assert format_cell(RUN, "BLEU_4") == "0.0500 [0.0100, 0.0900]"
    assert format_cell(RUN, "ROUGE_L") == "0.2500"
    assert format_cell(RUN, "METEOR") == "-"
    assert format_cell(RUN, "absent") == "-"
    assert format_cell({"count": 3}, "count") == "3"


def test_markdown_table_drops_empty_columns():
    table = markdown_table({"a": {"x": 1.0}, "b": {"x": 2.0, "y": None}}, ["x", "y", "z"])
    assert table.splitlines() == ["| system | x |", "|---|---|", "| a | 1.0000 |", "| b | 2.0000 |"]


def test_metric_and_diagnostic_tables():
    text = metric_and_diagnostic_tables({"this run": RUN})
    metric_table, diagnostic_table = text.split("\n\nReport diagnostics:\n\n")
    assert metric_table.splitlines()[0] == "| system | BLEU_1 | BLEU_4 | ROUGE_L | CIDEr |"
    assert "| this run | 0.3000 | 0.0500 [0.0100, 0.0900] | 0.2500 | 0.2000 |" in metric_table
    assert diagnostic_table.splitlines()[0] == ("| system | empty_generation_rate | mean_hypothesis_words | "
                                                "training_copy_rate |")
    assert diagnostic_table.splitlines()[2] == "| this run | 0.0000 | 40.5000 | 0.2500 |"


def test_margins_per_system():
    result = margins(RUN, SYSTEMS)
    assert result["most_frequent"] == pytest.approx({"BLEU_4": 0.04, "ROUGE_L": 0.12, "CIDEr": 0.196})
    assert result["nearest_neighbour"]["CIDEr"] == pytest.approx(-0.10)
    assert margins({"BLEU_4": None}, {"x": {"BLEU_4": 0.1}})["x"]["BLEU_4"] is None


def test_comparison_names_what_is_beaten():
    text = comparison_table(RUN, SYSTEMS)
    lines = text.splitlines()
    assert "- against most_frequent: beats it on BLEU_4/ROUGE_L/CIDEr (BLEU_4 +0.0400, ROUGE_L +0.1200, " \
           "CIDEr +0.1960)" in lines
    assert any(line.startswith("- against nearest_neighbour: does NOT beat it") for line in lines)
    assert lines[2].startswith("| this run |")
    # A missing metric never counts as beaten.
    assert "does NOT beat it" in comparison_table({"BLEU_4": 1.0, "ROUGE_L": 1.0}, {"x": SYSTEMS["most_frequent"]})


def test_run_summary_scalars_keys():
    scalars = run_summary_scalars(SYSTEMS, RUN)
    assert scalars["baseline/most_frequent/BLEU_4"] == 0.01
    assert scalars["baseline/nearest_neighbour/METEOR"] == 0.08
    assert scalars["baseline_margin/nearest_neighbour/CIDEr"] == pytest.approx(-0.10)
    assert "baseline/most_frequent/diagnostics" not in scalars
    assert not any(key.startswith("baseline_margin/") for key in run_summary_scalars(SYSTEMS))
