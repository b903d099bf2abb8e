"""Helpers shared by the data tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_gray_png(path: Path, size: tuple[int, int] = (40, 32), seed: int = 0) -> Path:
    """Write an 8-bit grayscale PNG with random content and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_tar_gz(archive: Path, files: dict[str, Path], folder: str = "") -> Path:
    """Write a .tgz holding each source file under `folder/<name>` and return its path."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, source in files.items():
            tar.add(source, arcname=f"{folder}/{name}" if folder else name)
    return archive
