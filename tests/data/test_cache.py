"""Tests for r2gen.data.cache.DecodedImageCache with real transforms and real Arrow files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torchvision import transforms

from data_helpers import write_gray_png
from r2gen.data.cache import DecodedImageCache, cache_key
from r2gen.data.images import load_image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def make_transform(size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


@pytest.fixture
def image_root(tmp_path) -> Path:
    root = tmp_path / "images"
    for index in range(5):
        write_gray_png(root / f"s{index}" / "0.png", size=(60 + index, 50), seed=index)
    return root


PATHS = [f"s{index}/0.png" for index in range(5)]


def open_cache(image_root: Path, cache_dir: Path, size: int = 24, dataset: str = "manifest:aa", **kwargs):
    return DecodedImageCache.open_or_build(
        image_root, PATHS, make_transform(size), dataset, f"resize-{size}", cache_dir=cache_dir, **kwargs
    )


def test_cache_matches_uncached_transform(image_root, tmp_path):
    cache = open_cache(image_root, tmp_path / "cache")
    transform = make_transform(24)
    assert len(cache) == 5
    for path in PATHS:
        expected = transform(load_image(image_root / path))
        loaded = cache.load(path)
        assert loaded.dtype == torch.float32
        assert loaded.shape == (3, 24, 24)
        assert torch.equal(loaded, expected)
    assert cache.misses == 0


def test_cache_reused_without_decoding(image_root, tmp_path):
    first = open_cache(image_root, tmp_path / "cache")
    expected = first.load("s3/0.png")
    # Deleting the source images proves the second open reads only the cache.
    for path in PATHS:
        (image_root / path).unlink()
    second = open_cache(image_root, tmp_path / "cache")
    assert second.directory == first.directory
    assert torch.equal(second.load("s3/0.png"), expected)


def test_cache_invalidated_by_transform_or_manifest(image_root, tmp_path):
    base = open_cache(image_root, tmp_path / "cache")
    resized = open_cache(image_root, tmp_path / "cache", size=16)
    rebuilt = open_cache(image_root, tmp_path / "cache", dataset="manifest:bb")
    assert len({base.directory, resized.directory, rebuilt.directory}) == 3
    assert resized.load("s0/0.png").shape == (3, 16, 16)
    entries = sorted(path.name for path in (tmp_path / "cache").iterdir())
    assert len(entries) == 3
    assert all(name.startswith("images-") for name in entries)


def test_cache_key_depends_on_each_input():
    key = cache_key("manifest:a", "t", "float32", ["x", "y"])
    assert key == cache_key("manifest:a", "t", "float32", ["y", "x", "x"])
    assert key != cache_key("manifest:b", "t", "float32", ["x", "y"])
    assert key != cache_key("manifest:a", "u", "float32", ["x", "y"])
    assert key != cache_key("manifest:a", "t", "float16", ["x", "y"])
    assert key != cache_key("manifest:a", "t", "float32", ["x"])


def test_cache_miss_falls_back_to_decoding(image_root, tmp_path):
    cache = DecodedImageCache.open_or_build(
        image_root, PATHS[:2], make_transform(24), "manifest:aa", "resize-24", cache_dir=tmp_path / "cache"
    )
    loaded = cache.load("s4/0.png")
    assert cache.misses == 1
    assert torch.equal(loaded, make_transform(24)(load_image(image_root / "s4/0.png")))


def test_cache_float16_storage(image_root, tmp_path):
    cache = open_cache(image_root, tmp_path / "cache", dtype="float16")
    expected = make_transform(24)(load_image(image_root / "s1/0.png"))
    loaded = cache.load("s1/0.png")
    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded, expected, atol=2e-3)
    with pytest.raises(ValueError, match="dtype 'int8' is invalid"):
        open_cache(image_root, tmp_path / "cache", dtype="int8")


def test_cache_pickles_without_pixels(image_root, tmp_path):
    cache = open_cache(image_root, tmp_path / "cache", size=64)
    expected = cache.load("s2/0.png")
    payload = pickle.dumps(cache)
    assert len(payload) < 3 * 64 * 64 * 4
    restored = pickle.loads(payload)
    assert torch.equal(restored.load("s2/0.png"), expected)


def test_cache_dir_from_environment(image_root, tmp_path, monkeypatch):
    monkeypatch.setenv("R2GEN_CACHE_DIR", str(tmp_path / "env-cache"))
    cache = DecodedImageCache.open_or_build(image_root, PATHS, make_transform(8), "manifest:aa", "resize-8")
    assert cache.directory.parent == tmp_path / "env-cache"


def test_cache_in_report_dataset_matches_decoding(image_root, tmp_path):
    from r2gen.data.annotation import Study
    from r2gen.data.dataset import ReportDataset

    studies = [Study(f"s{index}", "Clear lungs.", (f"s{index}/0.png",), "train") for index in range(5)]
    cache = open_cache(image_root, tmp_path / "cache")
    plain = ReportDataset(studies, image_root, make_transform(24), str.strip)
    cached = ReportDataset(studies, image_root, make_transform(24), str.strip, image_cache=cache)
    for index in range(5):
        assert torch.equal(cached[index]["images"], plain[index]["images"])
        assert cached[index]["images"].shape == (1, 3, 24, 24)
    assert cache.misses == 0
