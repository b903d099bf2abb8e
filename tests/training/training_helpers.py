"""Helpers for the training tests: run ``python -m r2gen.run`` and build a small real dataset."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Tiny models, short generations and NLG-only scoring: a run costs seconds, not minutes.
TINY = ["encoder=tiny", "llm=tiny", "data.min_new_tokens=2", "data.max_new_tokens=4", "generation.num_beams=1",
        "evaluation=fast", "data.decode_check=false", "trainer.torch_threads=1"]


def run_env(data_root: Path) -> dict[str, str]:
    # One thread per process, so 1-process and 2-process runs do the same float arithmetic.
    return {**os.environ, "R2GEN_DATA_ROOT": str(data_root), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_command(overrides: list[str], processes: int = 1, accelerate_config: str = "ddp") -> list[str]:
    """Return the command for ``python -m r2gen.run``, under ``accelerate launch`` when ``processes`` > 1.

    ``accelerate_config`` names a file in conf/accelerate.
    """
    if processes == 1:
        return [sys.executable, "-m", "r2gen.run", *overrides]
    # ddp.yaml (distributed_type MULTI_GPU) starts real processes over gloo on CPU; --cpu would start only one.
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO_ROOT / "conf" / "accelerate" / f"{accelerate_config}.yaml"), "--num_processes", str(processes),
            "--main_process_port", str(_free_port()), "-m", "r2gen.run", *overrides]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_r2gen(overrides: list[str], data_root: Path, processes: int = 1, timeout: int = 600,
              accelerate_config: str = "ddp") -> subprocess.CompletedProcess:
    return subprocess.run(run_command(overrides, processes, accelerate_config), env=run_env(data_root),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


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
