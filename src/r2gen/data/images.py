"""Decode chest X-ray files (PNG, JPEG) into 8-bit RGB PIL images."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

logger = logging.getLogger(__name__)

# Modes holding more than 8 bits per sample. They are rescaled by their own min..max range, because
# PIL's convert("RGB") clips them to 0..255 and turns a 12- or 16-bit radiograph almost white.
HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class ImageDecodeError(ValueError):
    """Raised when an image file is missing, unreadable, truncated or in an unsupported format."""


def load_image(path: Path, draft_size: int | None = None) -> Image.Image:
    """Decode an image file fully and return it as 8-bit RGB.

    Accepts 8-bit and 16-bit PNG (modes L, LA, I;16, I, P, RGB, RGBA) and JPEG. Alpha is dropped
    without compositing, as PIL's `convert("RGB")` does. The pixel data is decoded here, so a
    truncated file raises `ImageDecodeError` at this call rather than later in a data loader.

    `draft_size` lets the JPEG decoder scale by 1/2, 1/4 or 1/8 while keeping both sides at least
    that many pixels. It is for validation, which only needs to know that the whole file decodes;
    PNG files ignore it. Leave it `None` for training images.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft(image.mode, (draft_size, draft_size))
            image.load()
            return _to_rgb(image)
    except FileNotFoundError as error:
        raise ImageDecodeError(
            f"{path}: image file not found; fix: check the image folder and the entry's image_path"
        ) from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL raises OSError for truncated data and unknown formats, SyntaxError for some corrupt
        # headers, and ValueError for a few invalid chunk values.
        raise ImageDecodeError(
            f"{path}: cannot decode image ({type(error).__name__}: {error}); "
            "fix: re-export the file as PNG or JPEG, or drop the entry"
        ) from error


def find_undecodable(
    paths: Sequence[Path], draft_size: int | None = None, workers: int | None = None
) -> dict[Path, str]:
    """Decode every image and return {path: cause} for those that fail.

    Runs `load_image` in a thread pool of `workers` threads (default: the CPU count, at most 8);
    PIL releases the GIL while decoding, so the threads run in parallel.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        causes = list(pool.map(lambda path: _decode_failure(path, draft_size), paths))
    return {Path(path): cause for path, cause in zip(paths, causes) if cause is not None}


def _decode_failure(path: Path, draft_size: int | None) -> str | None:
    try:
        load_image(path, draft_size=draft_size)
    except ImageDecodeError as error:
        cause = error.__cause__
        if cause is None:
            return str(error)
        return f"image does not decode ({type(cause).__name__}: {cause})"
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    if image.mode in HIGH_BIT_DEPTH_MODES:
        return _rescale_to_8_bit(image).convert("RGB")
    return image.convert("RGB")


def _rescale_to_8_bit(image: Image.Image) -> Image.Image:
    """Map the image's actual value range onto 0..255 linearly."""
    pixels = np.asarray(image, dtype=np.float64)
    low = float(pixels.min())
    high = float(pixels.max())
    if high <= low:
        # NOTE: a constant image has no range to stretch, so it maps to black.
        return Image.fromarray(np.zeros(pixels.shape, dtype=np.uint8))
    scaled = (pixels - low) * (255.0 / (high - low))
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def truncated_images_allowed() -> bool:
    """Return True when PIL is set to pad truncated files instead of raising.

    `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is process-wide. When another library sets it, truncated
    files decode silently, so validation warns about it.
    """
    return bool(ImageFile.LOAD_TRUNCATED_IMAGES)
