"""A torch Dataset of studies (one or more views each) with cleaned reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from r2gen.data.annotation import Study
from r2gen.data.images import load_image


class ImageSource(Protocol):
    """Anything that returns a transformed image tensor for a path relative to the image root."""

    def load(self, relative_path: str) -> torch.Tensor: ...


def build_image_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Build the evaluation-style transform that R2GenGPT applies to every split.

    Resize straight to a square with bicubic interpolation (the aspect ratio is not kept, as in the
    Hugging Face ViT/Swin image processor), scale to [0, 1], then normalise. There is no augmentation.
    """
    return transforms.Compose([
        transforms.Resize((image_size, image_size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(mean=list(mean), std=list(std)),
    ])


def transform_fingerprint(image_size: int, mean: Sequence[float], std: Sequence[float]) -> str:
    """Return a string that changes whenever ``build_image_transform``'s output would change."""
    mean_text = ",".join(f"{value:.6f}" for value in mean)
    std_text = ",".join(f"{value:.6f}" for value in std)
    return f"resize-bicubic-{image_size}|mean={mean_text}|std={std_text}"


IMAGE_ABLATIONS = ("blank", "shuffled")


class ReportDataset(Dataset):
    """Studies with their views as one tensor [views, 3, H, W] and the cleaned report.

    ``clean`` is applied once here, so training targets and scoring references get the same text.
    ``image_ablation`` tests whether a model uses its input: "blank" replaces every view with a black
    image, "shuffled" gives each study the views of another study (a fixed derangement, seeded), and
    the reports stay where they are.
    """

    def __init__(
        self,
        studies: Sequence[Study],
        image_root: Path,
        transform: Callable,
        clean: Callable[[str], str],
        image_cache: ImageSource | None = None,
        image_ablation: str | None = None,
        ablation_seed: int = 0,
    ) -> None:
        if image_ablation not in (None, *IMAGE_ABLATIONS):
            raise ValueError(f"unknown image_ablation {image_ablation!r}; expected one of {IMAGE_ABLATIONS} or null")
        self.studies = list(studies)
        self.image_ablation = image_ablation
        self.image_source_index = _derangement(len(self.studies), ablation_seed) \
            if image_ablation == "shuffled" else list(range(len(self.studies)))
        self.image_root = Path(image_root)
        self.transform = transform
        self.image_cache = image_cache
        self.reports = [clean(study.report) for study in self.studies]

    def __len__(self) -> int:
        return len(self.studies)

    def _load_view(self, relative_path: str) -> torch.Tensor:
        if self.image_cache is not None:
            return self.image_cache.load(relative_path)
        return self.transform(load_image(self.image_root / relative_path))

    def __getitem__(self, index: int) -> dict[str, Any]:
        study = self.studies[index]
        image_study = self.studies[self.image_source_index[index]]
        images = torch.stack([self._load_view(path) for path in image_study.image_paths])
        if self.image_ablation == "blank":
            black = self.transform(Image.new("RGB", (images.shape[-1], images.shape[-2])))
            images = black.unsqueeze(0).expand_as(images).clone()
        return {"id": study.id, "images": images, "report": self.reports[index]}


def _derangement(size: int, seed: int) -> list[int]:
    """A seeded permutation in which no index maps to itself (identity for fewer than 2 items)."""
    if size < 2:
        return list(range(size))
    generator = torch.Generator().manual_seed(seed)
    shift = int(torch.randint(1, size, (1,), generator=generator))
    order = torch.randperm(size, generator=generator).tolist()
    # Rotating a random order by a non-zero shift moves every element.
    source = [0] * size
    for position, index in enumerate(order):
        source[index] = order[(position + shift) % size]
    return source
