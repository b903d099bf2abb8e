"""Small helpers for run statistics: peak memory, scalar filtering and log formatting."""

from __future__ import annotations

import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch if on CUDA, else the peak resident set size of this process, in MiB.

    On Linux the CPU peak is VmHWM, which ``reset_peak_memory`` resets. Elsewhere it is ``ru_maxrss``,
    the peak over the whole process, so later jobs of a sweep report at least the earlier jobs' peak.
    """
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", PROC_STATUS.read_text(), flags=re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) / 1024
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def reset_peak_memory() -> None:
    """Start a new peak-memory window: CUDA's allocator peak, and on Linux this process's VmHWM."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        PROC_CLEAR_REFS.write_text("5")  # "5" resets the peak RSS (proc(5), clear_refs)
    except OSError:
        pass


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Return the int and float entries of ``metrics`` (booleans, lists and dicts left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in scalar_metrics(metrics).items():
        parts.append(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


@dataclass
class Throughput:
    """Samples and target tokens trained since ``start`` (a ``time.perf_counter`` value), on all ranks."""

    start: float = field(default_factory=time.perf_counter)
    samples: int = 0
    tokens: int = 0

    def add(self, samples: int, tokens: int) -> None:
        self.samples += samples
        self.tokens += tokens

    @property
    def seconds(self) -> float:
        return max(time.perf_counter() - self.start, 1e-9)

    def rates(self) -> dict[str, float]:
        return {"samples_per_s": self.samples / self.seconds, "tokens_per_s": self.tokens / self.seconds}
