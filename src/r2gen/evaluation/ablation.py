"""Image-ablation comparison: scores of a run against scores of predictions from blank or shuffled images.

An ablation predictions file has the same JSONL format and the same study ids and references as
the run's file, but each hypothesis was generated with the image replaced (for example by a blank
image or by another study's image). A model that uses the image should score clearly lower on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def check_ablation_records(run: Sequence[Mapping[str, Any]], ablation: Sequence[Mapping[str, Any]], name: str) -> None:
    """Raise ValueError unless both files cover the same ids with the same references."""
    run_references = {record["id"]: record["reference"] for record in run}
    ablation_references = {record["id"]: record["reference"] for record in ablation}
    only_run = sorted(set(run_references) - set(ablation_references))
    only_ablation = sorted(set(ablation_references) - set(run_references))
    if only_run or only_ablation:
        raise ValueError(
            f"ablation {name} must cover the same study ids as the run; missing from it: {only_run[:10]}, "
            f"not in the run: {only_ablation[:10]}"
        )
    changed = [key for key, text in run_references.items() if ablation_references[key] != text]
    if changed:
        raise ValueError(
            f"ablation {name} has different references for {len(changed)} studies, e.g. {changed[:5]}; "
            "generate it from the same annotation and cleaning as the run"
        )


def compare_scores(run: Mapping[str, Any], ablation: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Return run, ablation and run minus ablation for every flat metric present in both."""
    comparison: dict[str, dict[str, float | None]] = {}
    for name, value in run.items():
        if isinstance(value, dict) or name not in ablation or isinstance(ablation[name], dict):
            continue
        other = ablation[name]
        difference = value - other if value is not None and other is not None else None
        comparison[name] = {"run": value, "ablation": other, "difference": difference}
    return comparison
