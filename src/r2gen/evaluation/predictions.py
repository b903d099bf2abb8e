"""Predictions files: JSON Lines with one ``{"id", "reference", "hypothesis"}`` object per study.

Other fields (for example ``split`` or ``image_path``) are allowed and ignored, so files written
by other codebases can be re-scored once they carry these three fields.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REQUIRED_FIELDS = ("id", "reference", "hypothesis")
MAX_LISTED_PROBLEMS = 20


class PredictionsFormatError(ValueError):
    """Raised when a predictions file has malformed lines; the message lists them by line number."""


def _line_problem(line: str, seen: dict[str, int]) -> tuple[dict[str, Any] | None, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON ({error.msg} at column {error.colno})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    for field in REQUIRED_FIELDS:
        if field not in record:
            return None, f"missing field {field!r}"
        if not isinstance(record[field], str):
            return None, f"field {field!r} is {type(record[field]).__name__}, expected a string"
    if record["id"] in seen:
        return None, f"duplicate id {record['id']!r} (first on line {seen[record['id']]})"
    return record, None


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Read a predictions JSONL file, skipping blank lines.

    Raises PredictionsFormatError listing every malformed line (the first 20, then a count), and
    FileNotFoundError when the file does not exist.
    """
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record, problem = _line_problem(line, seen)
            if problem is not None:
                problems.append(f"line {number}: {problem}")
                continue
            assert record is not None
            seen[record["id"]] = number
            records.append(record)
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        raise PredictionsFormatError(
            f"{path} has {len(problems)} malformed line(s); each line must be a JSON object with string "
            f"fields id, reference and hypothesis and a unique id:\n  {listed}{suffix}"
        )
    if not records:
        raise PredictionsFormatError(f"{path} contains no predictions")
    return records


def write_predictions(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as JSON Lines, atomically."""
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file in the same folder and os.replace."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers never see a partly written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
