"""Measure data-loader throughput (images per second) with and without the decoded-image cache.

    python benchmarks/bench_loader.py --root $R2GEN_DATA_ROOT/covid_cxr_notes --batch-size 8 --image-size 224

Each mode iterates the whole dataset `--epochs` times through a torch DataLoader over the
project's ReportDataset; the median epoch rate is reported. The cache build (one decode pass) is
timed separately. The cache lives in a temporary folder unless `--cache-dir` is given.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from r2gen.data.annotation import load_annotation
from r2gen.data.cache import DecodedImageCache
from r2gen.data.cleaning import clean_report
from r2gen.data.dataset import ReportDataset, build_image_transform, transform_fingerprint
from r2gen.data.manifest import dataset_fingerprint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def stack_images(batch: list[dict]) -> torch.Tensor:
    return torch.cat([item["images"] for item in batch])


def epoch_rates(dataset: ReportDataset, batch_size: int, workers: int, epochs: int) -> list[float]:
    # Persistent workers keep worker start-up (fork, imports) out of every epoch but the first.
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=stack_images,
        persistent_workers=workers > 0,
    )
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        images = sum(batch.shape[0] for batch in loader)
        rates.append(images / (time.perf_counter() - started))
    return rates


def main() -> None:
    default_root = Path(os.environ.get("R2GEN_DATA_ROOT", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=default_root / "covid_cxr_notes", help="dataset folder")
    parser.add_argument("--annotation", default="annotation.json", help="annotation file relative to --root")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=224, help="square side in pixels (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="passes per mode; the median is reported")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads of the main process (default: torch's)")
    parser.add_argument("--cache-dir", type=Path, help="cache folder (default: a temporary folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    studies = load_annotation(args.root / args.annotation)
    everything = [study for split in studies.values() for study in split]
    transform = build_image_transform(args.image_size, IMAGENET_MEAN, IMAGENET_STD)
    clean = functools.partial(clean_report, rules="none")
    image_root = args.root / "images"

    plain = ReportDataset(everything, image_root, transform, clean)
    uncached = epoch_rates(plain, args.batch_size, args.workers, args.epochs)

    with tempfile.TemporaryDirectory() as temporary:
        started = time.perf_counter()
        cache = DecodedImageCache.open_or_build(
            image_root,
            [path for study in everything for path in study.image_paths],
            transform,
            dataset_fingerprint(args.root / args.annotation),
            transform_fingerprint(args.image_size, IMAGENET_MEAN, IMAGENET_STD),
            cache_dir=args.cache_dir or Path(temporary),
        )
        build_seconds = time.perf_counter() - started
        cached_dataset = ReportDataset(everything, image_root, transform, clean, image_cache=cache)
        cached = epoch_rates(cached_dataset, args.batch_size, args.workers, args.epochs)

    uncached_rate, cached_rate = statistics.median(uncached), statistics.median(cached)
    print(f"dataset: {args.root} ({len(everything)} studies, "
          f"{sum(len(study.image_paths) for study in everything)} images)")
    print(f"batch {args.batch_size}, {args.image_size} px, {args.workers} worker(s), "
          f"{args.epochs} epoch(s) per mode, torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")
    print(f"| mode | images/s (median) | epochs (images/s) |")
    print(f"|---|---|---|")
    print(f"| no cache | {uncached_rate:.1f} | {', '.join(f'{rate:.1f}' for rate in uncached)} |")
    print(f"| cache | {cached_rate:.1f} | {', '.join(f'{rate:.1f}' for rate in cached)} |")
    print(f"speed-up: {cached_rate / uncached_rate:.1f}x; cache build: {build_seconds:.2f} s")


if __name__ == "__main__":
    main()
