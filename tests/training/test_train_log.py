"""train_log.jsonl: appending, truncation on resume and a torn last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2gen.training.train_log import FILE_NAME, TrainLog, read_train_log


def test_append_and_read(tmp_path: Path):
    log = TrainLog(tmp_path, enabled=True)
    for step in (1, 2, 3):
        log.append({"step": step, "loss": 10.0 - step})
    assert read_train_log(tmp_path / FILE_NAME) == [{"step": 1, "loss": 9.0}, {"step": 2, "loss": 8.0},
                                                    {"step": 3, "loss": 7.0}]


def test_truncate_after_resumed_step(tmp_path: Path):
    log = TrainLog(tmp_path, enabled=True)
    for step in range(1, 6):
        log.append({"step": step})
    log.truncate_after(3)
    assert [row["step"] for row in read_train_log(log.path)] == [1, 2, 3]
    log.truncate_after(0)
    assert read_train_log(log.path) == []


def test_torn_last_line_is_skipped(tmp_path: Path):
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps({"step": 1}) + "\n" + '{"step": 2, "lo')
    assert read_train_log(path) == [{"step": 1}]
    TrainLog(tmp_path, enabled=True).truncate_after(5)
    assert path.read_text() == '{"step": 1}\n'


def test_corrupt_middle_line_raises(tmp_path: Path):
    path = tmp_path / FILE_NAME
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_train_log(path)


def test_disabled_log_writes_nothing(tmp_path: Path):
    log = TrainLog(tmp_path, enabled=False)
    log.append({"step": 1})
    log.truncate_after(0)
    assert not log.path.exists()
