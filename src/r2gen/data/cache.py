"""Decoded-image cache: transformed image tensors in a memory-mapped Hugging Face `datasets` Arrow file.

Decoding a PNG and resizing it costs milliseconds per image on every epoch. The cache stores the
transform's output once, so later epochs and later runs copy a row out of a memory-mapped file.

An entry lives in `<cache dir>/<name>-<key>/` where the key hashes the dataset fingerprint (manifest
or annotation checksum), the transform fingerprint, the stored dtype and the list of image paths.
A change in any of them selects a new entry, so a stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.arrow_writer import ArrowWriter

from r2gen.data.images import load_image

logger = logging.getLogger(__name__)

CACHE_DIR_VARIABLE = "R2GEN_CACHE_DIR"
DTYPES = ("float32", "float16")
DATA_FILE = "images.arrow"
META_FILE = "meta.json"
WRITE_BATCH = 32


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_VARIABLE) or Path.home() / ".cache" / "r2gen")


def cache_key(dataset_fingerprint: str, transform_fingerprint: str, dtype: str, paths: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in (dataset_fingerprint, transform_fingerprint, dtype, *sorted(set(paths))):
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:24]


class DecodedImageCache:
    """Transformed images read from a memory-mapped Arrow file, by path relative to the image root.

    `load` returns a float32 tensor equal to `transform(load_image(image_root / path))` (exactly for
    dtype float32, rounded to float16 precision for float16). A path that is not in the cache falls
    back to decoding and is counted in `misses`.
    """

    def __init__(self, directory: Path, image_root: Path, transform: Callable) -> None:
        self.directory = Path(directory)
        self.image_root = Path(image_root)
        self.transform = transform
        meta = json.loads((self.directory / META_FILE).read_text(encoding="utf-8"))
        self.shape = tuple(meta["shape"])
        self.index = {path: row for row, path in enumerate(meta["paths"])}
        self.misses = 0
        self._chunks: list[np.ndarray] | None = None
        self._chunk_starts: list[int] = []

    @classmethod
    def open_or_build(
        cls,
        image_root: Path,
        relative_paths: Iterable[str],
        transform: Callable,
        dataset_fingerprint: str,
        transform_fingerprint: str,
        cache_dir: Path | None = None,
        name: str = "images",
        dtype: str = "float32",
        workers: int | None = None,
    ) -> DecodedImageCache:
        """Open the cache entry for these inputs, building it first when it does not exist."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is invalid; use one of {DTYPES}")
        paths = sorted(set(relative_paths))
        key = cache_key(dataset_fingerprint, transform_fingerprint, dtype, paths)
        directory = Path(cache_dir or default_cache_dir()) / f"{name}-{key}"
        if (directory / META_FILE).is_file() and (directory / DATA_FILE).is_file():
            logger.info("Using decoded-image cache %s (%d images)", directory, len(paths))
        else:
            meta = {"dataset_fingerprint": dataset_fingerprint, "transform_fingerprint": transform_fingerprint,
                    "dtype": dtype}
            _build(directory, Path(image_root), paths, transform, meta, workers)
        return cls(directory, image_root, transform)

    def __len__(self) -> int:
        return len(self.index)

    def load(self, relative_path: str) -> torch.Tensor:
        row = self.index.get(relative_path)
        if row is None:
            self.misses += 1
            if self.misses == 1:
                logger.warning("Image %s is not in cache %s; decoding it instead", relative_path, self.directory)
            return self.transform(load_image(self.image_root / relative_path))
        chunks = self._open()
        chunk = np.searchsorted(self._chunk_starts, row, side="right") - 1
        values = chunks[chunk][row - self._chunk_starts[chunk]]
        return torch.from_numpy(values.astype(np.float32, copy=True))

    def __getstate__(self) -> dict:
        # Data loader workers reopen the memory map instead of receiving a copy of the pixels.
        state = self.__dict__.copy()
        state["_chunks"] = None
        return state

    def _open(self) -> list[np.ndarray]:
        if self._chunks is None:
            table = datasets.Dataset.from_file(str(self.directory / DATA_FILE)).data.table
            column = table.column("pixels")
            chunks, starts, start = [], [], 0
            for chunk in column.chunks:
                flat = chunk.flatten().to_numpy(zero_copy_only=True)
                chunks.append(flat.reshape((len(chunk), *self.shape)))
                starts.append(start)
                start += len(chunk)
            self._chunks, self._chunk_starts = chunks, starts
        return self._chunks


def _build(
    directory: Path, image_root: Path, paths: list[str], transform: Callable, meta: dict, workers: int | None
) -> None:
    """Decode and transform every image into `directory`, writing a temporary folder first."""
    if not paths:
        raise ValueError("cannot build a decoded-image cache without image paths")
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    logger.info("Building decoded-image cache %s from %d images", directory, len(paths))

    def decode(relative: str) -> np.ndarray:
        return np.asarray(transform(load_image(image_root / relative)), dtype=meta["dtype"])

    first = decode(paths[0])
    arrow_type = pa.float16() if meta["dtype"] == "float16" else pa.float32()
    features = datasets.Features({
        "path": datasets.Value("string"),
        "pixels": datasets.List(datasets.Value(meta["dtype"]), length=int(first.size)),
    })
    try:
        writer = ArrowWriter(features=features, path=str(temporary / DATA_FILE))
        with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(paths), WRITE_BATCH):
                batch = paths[start:start + WRITE_BATCH]
                arrays = list(pool.map(decode, batch))
                flat = pa.array(np.stack(arrays).reshape(-1), type=arrow_type)
                pixels = pa.FixedSizeListArray.from_arrays(flat, int(first.size))
                writer.write_table(pa.table({"path": pa.array(batch, pa.string()), "pixels": pixels}))
        writer.finalize()
        writer.close()
        meta = {**meta, "shape": list(first.shape), "paths": paths}
        (temporary / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        os.replace(temporary, directory)
    except OSError:
        if (directory / META_FILE).is_file():
            # Another process finished the same entry first; its content is identical.
            logger.info("Cache %s was built concurrently; using that copy", directory)
        else:
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
