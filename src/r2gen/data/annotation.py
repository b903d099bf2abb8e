"""Load R2Gen-layout annotation files into `Study` records.

The layout is the one R2Gen (Chen et al., EMNLP 2020) released for IU X-ray and MIMIC-CXR:

    {"train": [entry, ...], "val": [...], "test": [...]}
    entry = {"id": str, "report": str, "image_path": [str, ...], "split": str (optional)}

Image paths are relative to the dataset's image folder. Structural problems are collected over the
whole file and raised together as one `AnnotationError`, so a user can fix them in a single pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_SPLITS: tuple[str, ...] = ("train", "val", "test")

# Problems listed in full in an error message; the rest are counted.
MAX_LISTED_PROBLEMS = 20


class AnnotationError(ValueError):
    """Raised when an annotation file is not a valid R2Gen-layout file."""


@dataclass(frozen=True)
class Study:
    """One study: a report and the images it describes."""

    id: str
    report: str
    image_paths: tuple[str, ...]
    split: str


def format_problem_list(problems: Sequence[str], limit: int = MAX_LISTED_PROBLEMS) -> str:
    """Format problems one per line, listing at most `limit` and counting the rest."""
    lines = [f"  - {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more problem(s) not listed")
    return "\n".join(lines)


def load_annotation(
    path: Path, splits: Iterable[str] = DEFAULT_SPLITS, check_duplicates: bool = True
) -> dict[str, list[Study]]:
    """Read the requested splits of an R2Gen-layout annotation file.

    Raises `AnnotationError` listing every structural problem found. The problems checked are
    invalid JSON, a missing split, an entry that is not an object, a missing or ill-typed field,
    an empty `image_path` list, and an entry whose `split` field disagrees with its top-level key.
    An id used twice in the loaded splits is a problem too. `check_duplicates=False` keeps repeated ids, for callers that let `validate_studies`
    report or skip them. Report text is returned unchanged; emptiness is checked by
    `validate_studies`.
    """
    path = Path(path)
    splits = tuple(splits)
    document = _read_json(path)
    problems: list[str] = []
    studies: dict[str, list[Study]] = {}
    first_seen: dict[str, str] = {}

    for split in splits:
        if split not in document:
            problems.append(
                f"split '{split}' is missing (top-level keys: {sorted(document)}); "
                f"fix: add a '{split}' list or request only the splits the file contains"
            )
            continue
        entries = document[split]
        if not isinstance(entries, list):
            problems.append(
                f"split '{split}' is a {type(entries).__name__}, expected a list of entries; "
                "fix: make the value a JSON array of study objects"
            )
            continue
        studies[split] = _parse_split(split, entries, problems, first_seen if check_duplicates else None)

    if problems:
        raise AnnotationError(
            f"{path}: invalid annotation file, {len(problems)} problem(s):\n"
            + format_problem_list(problems)
        )
    logger.info(
        "Loaded %s: %s", path, ", ".join(f"{split}={len(items)}" for split, items in studies.items())
    )
    return studies


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open("r", encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError as error:
        raise AnnotationError(
            f"{path}: annotation file not found; fix: check the dataset root and annotation name"
        ) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationError(
            f"{path}: not valid UTF-8 JSON ({error}); fix: regenerate the file or repair the JSON"
        ) from error
    if not isinstance(document, dict):
        raise AnnotationError(
            f"{path}: top level is a {type(document).__name__}, expected an object with keys "
            "'train', 'val' and 'test'; fix: use the R2Gen layout {\"train\": [...], ...}"
        )
    return document


def _parse_split(
    split: str, entries: list[Any], problems: list[str], first_seen: dict[str, str] | None
) -> list[Study]:
    parsed: list[Study] = []
    for index, entry in enumerate(entries):
        where = f"split '{split}', entry {index}"
        if not isinstance(entry, dict):
            problems.append(
                f"{where}: is a {type(entry).__name__}, expected an object; "
                "fix: make each entry an object with 'id', 'report' and 'image_path'"
            )
            continue
        study = _parse_entry(split, where, entry, problems)
        if study is None:
            continue
        if first_seen is None:
            parsed.append(study)
            continue
        if study.id in first_seen:
            problems.append(
                f"{where} (id '{study.id}'): duplicate id, first used at {first_seen[study.id]}; "
                "fix: give each study a unique id or remove the repeated entry"
            )
            continue
        first_seen[study.id] = where
        parsed.append(study)
    return parsed


def _parse_entry(split: str, where: str, entry: dict[str, Any], problems: list[str]) -> Study | None:
    study_id = entry.get("id")
    if not isinstance(study_id, str) or not study_id.strip():
        problems.append(
            f"{where}: field 'id' is {_describe(entry, 'id')}, expected a non-empty string; "
            "fix: set a unique string id"
        )
        return None
    where = f"{where} (id '{study_id}')"
    count_before = len(problems)

    report = entry.get("report")
    if not isinstance(report, str):
        problems.append(
            f"{where}: field 'report' is {_describe(entry, 'report')}, expected a string; "
            "fix: put the report text in 'report'"
        )

    image_paths = entry.get("image_path")
    if not isinstance(image_paths, list):
        problems.append(
            f"{where}: field 'image_path' is {_describe(entry, 'image_path')}, expected a list of "
            "relative paths; fix: write it as a JSON array, e.g. [\"<id>/0.png\"]"
        )
    elif not image_paths:
        problems.append(
            f"{where}: field 'image_path' is an empty list; "
            "fix: list at least one image path or remove the entry"
        )
    elif not all(isinstance(item, str) and item for item in image_paths):
        problems.append(
            f"{where}: field 'image_path' contains a non-string or empty item {image_paths!r}; "
            "fix: use non-empty path strings relative to the image folder"
        )

    entry_split = entry.get("split", split)
    if entry_split != split:
        problems.append(
            f"{where}: field 'split' is {entry_split!r} but the entry is listed under '{split}'; "
            "fix: move the entry to the matching list or correct its 'split' field"
        )

    if len(problems) > count_before:
        return None
    return Study(id=study_id, report=report, image_paths=tuple(image_paths), split=split)


def _describe(entry: dict[str, Any], field: str) -> str:
    if field not in entry:
        return "missing"
    return f"a {type(entry[field]).__name__} ({entry[field]!r:.60})"
