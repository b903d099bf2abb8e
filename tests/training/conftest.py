"""Fixtures for the training tests: a small real dataset and helpers that run ``r2gen.run``.

The small dataset takes the first studies of each covid_cxr split, copies their images into the
test's temporary folder, and writes an R2Gen annotation, so an epoch is a few steps long.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Tiny models, short generations and NLG-only scoring: a run costs seconds, not minutes.
TINY = ["encoder=tiny", "llm=tiny", "data.min_new_tokens=2", "data.max_new_tokens=4", "generation.num_beams=1",
        "evaluation=fast", "data.decode_check=false", "trainer.torch_threads=1"]


def run_env(data_root: Path) -> dict[str, str]:
    # One thread per process, so 1-process and 2-process runs do the same float arithmetic.
    return {**os.environ, "R2GEN_DATA_ROOT": str(data_root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_command(overrides: list[str], processes: int = 1) -> list[str]:
    """Return the command for ``python -m r2gen.run``, under ``accelerate launch`` when ``processes`` > 1."""
    if processes == 1:
        return [sys.executable, "-m", "r2gen.run", *overrides]
    # --multi_gpu (from ddp.yaml) starts real processes over gloo on CPU; --cpu would start only one.
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO_ROOT / "conf" / "accelerate" / "ddp.yaml"), "--num_processes", str(processes),
            "--main_process_port", str(_free_port()), "-m", "r2gen.run", *overrides]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_r2gen(overrides: list[str], data_root: Path, processes: int = 1,
              timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(run_command(overrides, processes), env=run_env(data_root), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_small_dataset(source: Path, target: Path, sizes: dict[str, int]) -> Path:
    """Copy the first ``sizes[split]`` studies of each split of ``source`` (R2Gen layout) to ``target``."""
    annotation = json.loads((source / "annotation.json").read_text())
    small = {split: annotation[split][:count] for split, count in sizes.items()}
    for entries in small.values():
        for entry in entries:
            for relative in entry["image_path"]:
                destination = target / "images" / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / "images" / relative, destination)
    (target / "annotation.json").write_text(json.dumps(small))
    return target


@pytest.fixture(scope="session")
def covid_root(data_root: Path) -> Path:
    return data_root / "covid_cxr_notes"


@pytest.fixture(scope="session")
def small_covid(covid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train, 3 val and 3 test studies of covid_cxr: with batch 2 an epoch is 3 optimizer steps."""
    return make_small_dataset(covid_root, tmp_path_factory.mktemp("small_covid"), {"train": 6, "val": 3, "test": 3})
