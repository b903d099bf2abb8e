"""Small helpers for run statistics: peak memory, scalar filtering and log formatting."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Any

import torch


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch if on CUDA, else the peak resident set size of this process, in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
