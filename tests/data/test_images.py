"""Tests for r2gen.data.images.load_image across PNG modes, JPEG and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2gen.data.images import ImageDecodeError, load_image


def save(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))


def test_load_image_16_bit_png_uses_real_range(tmp_path):
    # A 12-bit radiograph stored as 16-bit: values 1000..3000 must span 0..255, not clip to white.
    pixels = np.tile(np.linspace(1000, 3000, 64).astype(np.uint16), (8, 1))
    path = save(tmp_path / "deep.png", Image.fromarray(pixels))
    assert Image.open(path).mode == "I;16"
    image = load_image(path)
    array = np.asarray(image)
    assert image.mode == "RGB"
    assert array.shape == (8, 64, 3)
    assert array.min() == 0
    assert array.max() == 255
    assert array[0, 32, 0] == round((int(pixels[0, 32]) - 1000) * 255 / 2000)
    assert np.array_equal(array[..., 0], array[..., 2])


def test_load_image_32_bit_mode_i(tmp_path):
    pixels = np.array([[-5, 0, 5], [10, 15, 20]], dtype=np.int32)
    path = save(tmp_path / "mode_i.tiff", Image.fromarray(pixels))
    assert Image.open(path).mode == "I"
    array = np.asarray(load_image(path))
    assert array[0, 0, 0] == 0
    assert array[1, 2, 0] == 255
    assert array[0, 2, 1] == round(10 * 255 / 25)


def test_load_image_constant_16_bit_is_black(tmp_path):
    path = save(tmp_path / "flat.png", Image.fromarray(np.full((4, 4), 700, dtype=np.uint16)))
    assert np.asarray(load_image(path)).max() == 0


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "RGB"])
def test_load_image_png_modes_to_rgb(tmp_path, mode):
    gray = Image.fromarray(gradient())
    path = save(tmp_path / f"{mode}.png", gray.convert(mode))
    assert Image.open(path).mode == mode
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    array = np.asarray(image)
    if mode != "P":
        # A 256-color palette may merge gray levels, so only the other modes are exact.
        assert np.array_equal(array[..., 1], np.asarray(gray))
    assert abs(int(array[0, 63, 0]) - 255) <= 8


def test_load_image_jpeg_and_draft(tmp_path):
    path = save(tmp_path / "x.jpg", Image.fromarray(gradient(512, 400)).convert("RGB"), quality=95)
    full = load_image(path)
    assert full.mode == "RGB"
    assert full.size == (512, 400)
    # 1/8 scale would make the height 50 < 64, so the decoder uses 1/4.
    small = load_image(path, draft_size=64)
    assert small.size == (128, 100)
    assert abs(int(np.asarray(full)[200, 511, 0]) - 255) <= 3


def test_load_image_grayscale_jpeg(tmp_path):
    path = save(tmp_path / "gray.jpeg", Image.fromarray(gradient()), quality=95)
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == np.asarray(image)[0, 0, :1].tolist() * 3


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_load_image_truncated_file_raises(tmp_path, suffix):
    pixels = np.random.default_rng(0).integers(0, 256, size=(200, 200), dtype=np.uint8)
    path = save(tmp_path / f"whole{suffix}", Image.fromarray(pixels))
    data = path.read_bytes()
    broken = tmp_path / f"cut{suffix}"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated") as caught:
        load_image(broken)
    assert str(broken) in str(caught.value)
    # Reduced-size JPEG decoding must detect the truncation too.
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(broken, draft_size=64)


def test_load_image_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image", encoding="utf-8")
    with pytest.raises(ImageDecodeError, match=r"cannot decode image \(UnidentifiedImageError"):
        load_image(path)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="image file not found"):
        load_image(tmp_path / "absent.png")


def test_load_image_real_covid_files(covid_root):
    png = load_image(covid_root / "images" / "ARDSSevere" / "0.png")
    assert png.mode == "RGB"
    assert min(png.size) <= 512
    jpegs = sorted((covid_root / "images").glob("*/0.jp*g"))
    assert jpegs
    assert load_image(jpegs[0]).mode == "RGB"
