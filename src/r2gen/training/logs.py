"""Rank-aware logging: every process logs, but only the main process writes INFO and below."""

from __future__ import annotations

import logging
import os


class MainProcessFilter(logging.Filter):
    """Pass records of WARNING and above from every rank, and the rest from rank 0 only."""

    def __init__(self) -> None:
        super().__init__()
        self.rank = int(os.environ.get("RANK", "0"))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rank != 0 and record.levelno < logging.WARNING:
            return False
        record.rank = self.rank
        return True


def install_rank_filter() -> None:
    """Add ``MainProcessFilter`` to every handler of the root logger (Hydra's console and file handlers)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, MainProcessFilter) for existing in handler.filters):
            handler.addFilter(MainProcessFilter())
