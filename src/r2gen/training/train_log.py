"""``train_log.jsonl``: one JSON line per optimizer step, kept consistent across resumes.

Lines are appended and flushed as training goes, so a killed run keeps every step it finished. A
run killed after its last saved state has logged steps that the resumed run will train again, so
``truncate_after`` drops them when training resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from r2gen.training.io import write_jsonl_atomic

log = logging.getLogger(__name__)

FILE_NAME = "train_log.jsonl"


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """Return the rows of a train log. A torn last line (the process was killed mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                log.warning("%s: skipping the incomplete last line %d", path, number)
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON; delete the file or fix the line") from None
    return rows


class TrainLog:
    """Appends step rows to ``<run dir>/train_log.jsonl`` on the main process; a no-op elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = Path(run_dir) / FILE_NAME
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Keep only rows up to optimizer step ``step`` (all rows are dropped for 0)."""
        if not self.enabled or not self.path.exists():
            return
        rows = read_train_log(self.path)
        kept = [row for row in rows if row["step"] <= step]
        if len(kept) != len(rows):
            log.info("%s: dropped %d rows after step %d, which the resumed run trains again",
                     self.path, len(rows) - len(kept), step)
        write_jsonl_atomic(self.path, kept)

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
