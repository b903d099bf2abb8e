"""Check loaded studies against the files on disk before training or evaluation starts.

`validate_studies` finds every problem in one pass. It checks for image paths that are absolute or
resolve outside the image folder (through `..` or a symlink), and for missing or undecodable images.
It also checks for reports that are empty before or after cleaning, repeated ids, and empty or
missing splits. With `on_invalid="error"` it raises one `DataValidationError` listing them all.
With `on_invalid="skip"` it drops the bad entries and counts them, but a split that is missing or
left empty still raises.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from r2gen.data.annotation import Study, format_problem_list
from r2gen.data.images import find_undecodable, truncated_images_allowed

logger = logging.getLogger(__name__)

ON_INVALID_CHOICES = ("error", "skip")

# JPEG files are decoded at up to 1/8 scale, keeping both sides >= this many pixels. The decoder
# still reads every entropy-coded byte, so truncation and corrupt data are still detected.
VALIDATION_DRAFT_SIZE = 64

# Ids named in the warning that `on_invalid="skip"` logs.
MAX_LOGGED_IDS = 5


class DataValidationError(ValueError):
    """Raised when a dataset fails validation; `report` contains every problem found."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Problem:
    """One invalid entry or split, with the cause and how to fix it."""

    kind: str
    split: str
    cause: str
    fix: str
    index: int | None = None
    study_id: str | None = None
    path: str | None = None

    def describe(self) -> str:
        where = f"split '{self.split}'"
        if self.index is not None:
            where += f", entry {self.index}"
        if self.study_id is not None:
            where += f" (id '{self.study_id}')"
        if self.path is not None:
            where += f", image '{self.path}'"
        return f"{where}: {self.cause}; fix: {self.fix}"


@dataclass
class SplitCounts:
    """Entry counts of one split: all entries, and those that passed every check."""

    total: int = 0
    valid: int = 0

    @property
    def invalid(self) -> int:
        return self.total - self.valid


@dataclass
class ValidationReport:
    """Result of `validate_studies`: per-split counts, problems and image decoding time.

    `skipped` counts entries dropped by `on_invalid="skip"`; it stays 0 in error mode.
    """

    image_root: Path
    counts: dict[str, SplitCounts] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0
    images_decoded: int = 0
    decode_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_counts(self) -> dict[str, int]:
        return dict(Counter(problem.kind for problem in self.problems))

    def summary(self) -> str:
        lines = [f"Image folder: {self.image_root}"]
        for split, counts in self.counts.items():
            lines.append(f"  {split}: {counts.total} entries, {counts.valid} valid, {counts.invalid} invalid")
        lines.append(f"Images decoded: {self.images_decoded} in {self.decode_seconds:.2f} s")
        if self.skipped:
            noun = "entry" if self.skipped == 1 else "entries"
            lines.append(f"Skipped {self.skipped} invalid {noun} (on_invalid=skip).")
        if not self.problems:
            lines.append("No problems found.")
            return "\n".join(lines)
        kinds = ", ".join(f"{kind}={count}" for kind, count in sorted(self.problem_counts().items()))
        lines.append(f"{len(self.problems)} problem(s) ({kinds}):")
        lines.append(format_problem_list([problem.describe() for problem in self.problems]))
        return "\n".join(lines)


def validate_studies(
    studies: dict[str, list[Study]],
    image_root: Path,
    clean: Callable[[str], str],
    on_invalid: str = "error",
    decode_images: bool = True,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
) -> tuple[dict[str, list[Study]], ValidationReport]:
    """Validate studies and return the ones to use together with a `ValidationReport`.

    `clean` is the report cleaning applied at training time; a report that it empties is invalid.
    `splits` lists splits that must be present and non-empty (default: every key of `studies`).
    `decode_images=False` checks only that image files exist. `workers` sets the number of decoding
    threads (default: the CPU count, at most 8).
    """
    if on_invalid not in ON_INVALID_CHOICES:
        raise ValueError(f"on_invalid={on_invalid!r} is invalid; use one of {ON_INVALID_CHOICES}")
    image_root = Path(image_root)
    report = ValidationReport(image_root=image_root)
    if not image_root.is_dir():
        raise DataValidationError(
            f"Image folder {image_root} not found; fix: point the data config's root/image_dir "
            "at the folder holding the images",
            report,
        )
    if decode_images and truncated_images_allowed():
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so truncated images "
            "will pass validation"
        )

    required = list(splits) if splits is not None else list(studies)
    report.problems.extend(_check_splits(studies, required))
    bad_entries = _check_entries(studies, image_root, clean, report, decode_images, workers)
    # List problems in file order: by split, then entry index, with split-level problems first.
    split_order = {split: position for position, split in enumerate(dict.fromkeys([*studies, *required]))}
    report.problems.sort(key=lambda problem: (
        split_order[problem.split], -1 if problem.index is None else problem.index
    ))

    kept: dict[str, list[Study]] = {}
    for split, items in studies.items():
        kept[split] = [study for index, study in enumerate(items) if (split, index) not in bad_entries]
        report.counts[split] = SplitCounts(total=len(items), valid=len(kept[split]))
    _finish(report, kept, required, on_invalid)
    return kept, report


def _finish(
    report: ValidationReport, kept: dict[str, list[Study]], required: list[str], on_invalid: str
) -> None:
    if report.ok:
        logger.info("Data validation passed:\n%s", report.summary())
        return
    split_problems = [problem for problem in report.problems if problem.kind == "split"]
    emptied = [
        split for split in required
        if split in kept and not kept[split] and report.counts[split].total
    ]
    if on_invalid == "error" or split_problems or emptied:
        reason = f" (skipping would leave split(s) {emptied} empty)" if emptied else ""
        raise DataValidationError(f"Data validation failed{reason}:\n{report.summary()}", report)
    report.skipped = sum(counts.invalid for counts in report.counts.values())
    skipped_ids = dict.fromkeys(problem.study_id for problem in report.problems if problem.study_id is not None)
    logger.warning(
        "Skipped %d invalid entr%s (%d problem(s)); first ids: %s",
        report.skipped,
        "y" if report.skipped == 1 else "ies",
        len(report.problems),
        ", ".join(list(skipped_ids)[:MAX_LOGGED_IDS]),
    )
    logger.info("Data validation summary:\n%s", report.summary())


def _check_splits(studies: dict[str, list[Study]], required: Iterable[str]) -> list[Problem]:
    problems = []
    for split in required:
        if split not in studies:
            problems.append(Problem(
                kind="split", split=split, cause="split is missing",
                fix=f"add a '{split}' list to the annotation file or stop requesting it",
            ))
        elif not studies[split]:
            problems.append(Problem(
                kind="split", split=split, cause="split has no entries",
                fix=f"add entries to '{split}' or stop requesting it",
            ))
    return problems


def _check_entries(
    studies: dict[str, list[Study]],
    image_root: Path,
    clean: Callable[[str], str],
    report: ValidationReport,
    decode_images: bool,
    workers: int | None,
) -> set[tuple[str, int]]:
    """Record entry-level problems in `report` and return the (split, index) keys of bad entries."""
    bad: set[tuple[str, int]] = set()
    seen_ids: dict[str, str] = {}
    resolved_images: dict[str, list[tuple[str, int, Study, str]]] = {}
    root = image_root.resolve()

    for split, items in studies.items():
        for index, study in enumerate(items):
            entry_problems = _check_id(study, split, index, seen_ids)
            entry_problems += _check_report(study, split, index, clean)
            for relative in study.image_paths:
                problem, resolved = _check_path(study, split, index, relative, root)
                if problem is not None:
                    entry_problems.append(problem)
                else:
                    resolved_images.setdefault(resolved, []).append((split, index, study, relative))
            if entry_problems:
                bad.add((split, index))
                report.problems.extend(entry_problems)

    for resolved, users, cause in _decode_all(resolved_images, decode_images, workers, report):
        for split, index, study, relative in users:
            bad.add((split, index))
            report.problems.append(Problem(
                kind="decode", split=split, index=index, study_id=study.id, path=relative,
                cause=cause, fix="re-export the image as PNG or JPEG, or drop the entry",
            ))
    return bad


def _check_id(study: Study, split: str, index: int, seen_ids: dict[str, str]) -> list[Problem]:
    if study.id in seen_ids:
        return [Problem(
            kind="duplicate_id", split=split, index=index, study_id=study.id,
            cause=f"id already used at {seen_ids[study.id]}",
            fix="give each study a unique id or remove the repeated entry",
        )]
    seen_ids[study.id] = f"split '{split}', entry {index}"
    return []


def _check_report(study: Study, split: str, index: int, clean: Callable[[str], str]) -> list[Problem]:
    if not study.report.strip():
        return [Problem(
            kind="empty_report", split=split, index=index, study_id=study.id,
            cause="report is empty", fix="fill in the report text or drop the entry",
        )]
    if not clean(study.report).strip():
        return [Problem(
            kind="empty_after_cleaning", split=split, index=index, study_id=study.id,
            cause=f"report is empty after cleaning (raw text: {study.report!r:.80})",
            fix="check the cleaning rules for this dataset or drop the entry",
        )]
    return []


def _check_path(
    study: Study, split: str, index: int, relative: str, root: Path
) -> tuple[Problem | None, str]:
    """Return (problem, "") for an unusable path, else (None, resolved absolute path)."""

    def problem(kind: str, cause: str, fix: str) -> tuple[Problem, str]:
        return Problem(kind=kind, split=split, index=index, study_id=study.id, path=relative,
                       cause=cause, fix=fix), ""

    if Path(relative).is_absolute() or Path(relative).drive:
        return problem("absolute_path", "image path is absolute",
                       "write the path relative to the image folder")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        return problem("outside_root", f"image path resolves outside the image folder, to {resolved}",
                       "remove '..' parts or symlinks that leave the image folder")
    if not resolved.is_file():
        return problem("missing_image", f"image file not found at {resolved}",
                       "restore the file or fix the entry's image_path")
    return None, str(resolved)


def _decode_all(
    resolved_images: dict[str, list[tuple[str, int, Study, str]]],
    decode_images: bool,
    workers: int | None,
    report: ValidationReport,
) -> list[tuple[str, list[tuple[str, int, Study, str]], str]]:
    """Decode each distinct image once and return the failures with the entries that use them."""
    if not decode_images or not resolved_images:
        return []
    paths = sorted(resolved_images)
    started = time.perf_counter()
    failures = find_undecodable([Path(path) for path in paths], VALIDATION_DRAFT_SIZE, workers)
    report.decode_seconds = time.perf_counter() - started
    report.images_decoded = len(paths)
    logger.info("Decoded %d images in %.2f s", len(paths), report.decode_seconds)
    return [(path, resolved_images[path], failures[Path(path)]) for path in paths if Path(path) in failures]
