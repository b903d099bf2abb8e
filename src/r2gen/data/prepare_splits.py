"""Split assignment for dataset builders: seeded group-level splits, or membership copied from a file."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse "train,val,test" ratios such as "0.7,0.1,0.2" (any positive scale; they are normalised)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise ValueError(f"--ratios {text!r} is invalid; write three numbers like 0.7,0.1,0.2") from error
    if len(values) != 3 or any(value < 0 for value in values) or sum(values) <= 0:
        raise ValueError(f"--ratios {text!r} is invalid; write three non-negative numbers like 0.7,0.1,0.2")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def assign_group_splits(
    groups: Iterable[str], ratios: Sequence[float], seed: int
) -> dict[str, str]:
    """Map each group (e.g. a patient id) to "train", "val" or "test".

    The groups are sorted, shuffled with `random.Random(seed)` and cut at the cumulative ratios,
    so the result depends only on the set of groups, the ratios and the seed. Group sizes are not
    weighed: the ratios apply to the number of groups.
    """
    ordered = sorted(set(groups))
    random.Random(seed).shuffle(ordered)
    train_end = round(ratios[0] * len(ordered))
    val_end = train_end + round(ratios[1] * len(ordered))
    assignment: dict[str, str] = {}
    for position, group in enumerate(ordered):
        if position < train_end:
            assignment[group] = "train"
        elif position < val_end:
            assignment[group] = "val"
        else:
            assignment[group] = "test"
    return assignment


def read_split_membership(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Read an R2Gen-layout annotation file and return (id -> split, id -> position in its split).

    Only ids and split keys are read, so any file with the R2Gen top-level layout works, including
    one whose images are absent.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--split-from {path}: cannot read it as JSON ({error})") from error
    membership: dict[str, str] = {}
    positions: dict[str, int] = {}
    for split in SPLIT_NAMES:
        entries = document.get(split) if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError(
                f"--split-from {path}: split '{split}' is missing or not a list; pass an annotation "
                "file in the R2Gen layout {\"train\": [...], \"val\": [...], \"test\": [...]}"
            )
        for position, entry in enumerate(entries):
            study_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(study_id, str):
                raise ValueError(f"--split-from {path}: split '{split}', entry {position} has no string id")
            if study_id in membership:
                raise ValueError(f"--split-from {path}: id '{study_id}' appears in more than one entry")
            membership[study_id] = split
            positions[study_id] = position
    return membership, positions
