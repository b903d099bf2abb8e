"""Build R2Gen-layout datasets from official sources.

    python -m r2gen.data.prepare iu_xray --reports NLMCXR_reports.tgz --images NLMCXR_png.tgz --out DIR
    python -m r2gen.data.prepare iu_xray --download --out DIR
    python -m r2gen.data.prepare mimic_cxr --root MIMIC-CXR-JPG [--reports mimic-cxr-reports.zip]

Each build writes `annotation.json` and `manifest.json` (sources with sha256, options, counts per
split, dropped studies with reasons, builder version) to the output folder. The exit status is 0
on success and 2 when an input is missing or invalid or a download fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from r2gen.data.download import DownloadError, download
from r2gen.data.manifest import sha256_file
from r2gen.data.prepare_iu_xray import (
    IMAGES_ARCHIVE,
    OPENI_BASE_URL,
    REPORTS_ARCHIVE,
    SECTION_CHOICES,
    IuXrayOptions,
    build_iu_xray,
)
from r2gen.data.prepare_mimic_cxr import ENTRY_CHOICES, VIEW_CHOICES, MimicCxrOptions, build_mimic_cxr
from r2gen.data.prepare_splits import parse_ratios

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r2gen.data.prepare", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="dataset", required=True)
    _add_iu_xray_arguments(commands.add_parser("iu_xray", help="build IU X-ray from the Open-i tarballs"))
    _add_mimic_cxr_arguments(
        commands.add_parser("mimic_cxr", help="build MIMIC-CXR from MIMIC-CXR-JPG and the report texts")
    )
    return parser


def _add_iu_xray_arguments(iu: argparse.ArgumentParser) -> None:
    iu.add_argument("--reports", type=Path, help=f"path of {REPORTS_ARCHIVE} (Open-i XML reports)")
    iu.add_argument("--images", type=Path, help=f"path of {IMAGES_ARCHIVE}, or a folder of its PNG files")
    iu.add_argument("--out", type=Path, required=True,
                    help="output folder for annotation.json, manifest.json and images/")
    iu.add_argument("--download", action="store_true", help="download both tarballs first (resumable)")
    iu.add_argument("--base-url", default=OPENI_BASE_URL,
                    help="URL of the folder holding both tarballs (default: %(default)s)")
    iu.add_argument("--download-dir", type=Path, help="folder for the downloads (default: OUT/downloads)")
    iu.add_argument("--reports-sha256", help=f"expected sha256 of {REPORTS_ARCHIVE}; a mismatch fails the download")
    iu.add_argument("--images-sha256", help=f"expected sha256 of {IMAGES_ARCHIVE}; a mismatch fails the download")
    iu.add_argument("--section", choices=SECTION_CHOICES, default="findings",
                    help="report section to use (default: %(default)s)")
    iu.add_argument("--min-images", type=int, default=2,
                    help="drop studies with fewer images (default: %(default)s)")
    iu.add_argument("--max-images", type=int, default=2,
                    help="images kept per study, 0 for all (default: %(default)s)")
    iu.add_argument("--seed", type=int, default=0, help="seed of the report-level split (default: %(default)s)")
    iu.add_argument("--ratios", default="0.7,0.1,0.2", help="train,val,test ratios (default: %(default)s)")
    iu.add_argument("--split-from", type=Path,
                    help="copy split membership and order from this R2Gen-layout annotation file")
    iu.add_argument("--reports-only", action="store_true", help="write the annotation without extracting images")


def _add_mimic_cxr_arguments(mimic: argparse.ArgumentParser) -> None:
    mimic.add_argument("--root", type=Path, required=True,
                       help="MIMIC-CXR-JPG folder holding the split and metadata CSVs and files/")
    mimic.add_argument("--reports", type=Path,
                       help="mimic-cxr-reports.zip or its unpacked folder (default: looked up under ROOT)")
    mimic.add_argument("--out", type=Path, help="output folder (default: ROOT)")
    mimic.add_argument("--section", choices=SECTION_CHOICES, default="findings",
                       help="report section to use (default: %(default)s)")
    mimic.add_argument("--views", choices=VIEW_CHOICES, default="all",
                       help="frontal keeps ViewPosition PA and AP only (default: %(default)s)")
    mimic.add_argument("--entry", choices=ENTRY_CHOICES, default="image",
                       help="one entry per image or per study (default: %(default)s)")
    mimic.add_argument("--no-check-images", action="store_true", help="skip the check that each JPEG file exists")


def run_iu_xray(args: argparse.Namespace) -> Path:
    reports, images = args.reports, args.images
    if args.download:
        if reports is not None or images is not None:
            raise SystemExit("--download fetches both tarballs; do not pass --reports or --images with it")
        target = args.download_dir or args.out / "downloads"
        base = args.base_url.rstrip("/")
        reports = download(f"{base}/{REPORTS_ARCHIVE}", target / REPORTS_ARCHIVE, args.reports_sha256)
        if not args.reports_only:
            images = download(f"{base}/{IMAGES_ARCHIVE}", target / IMAGES_ARCHIVE, args.images_sha256)
    if reports is None:
        raise SystemExit(f"pass --reports {REPORTS_ARCHIVE} or --download")
    if images is None and not args.reports_only:
        raise SystemExit(f"pass --images {IMAGES_ARCHIVE}, --download, or --reports-only")
    options = IuXrayOptions(
        section=args.section,
        min_images=args.min_images,
        max_images=args.max_images,
        seed=args.seed,
        ratios=parse_ratios(args.ratios),
        split_from=str(args.split_from) if args.split_from else None,
        reports_only=args.reports_only,
    )
    return build_iu_xray(reports, images, args.out, options)


def run_mimic_cxr(args: argparse.Namespace) -> Path:
    options = MimicCxrOptions(
        section=args.section, views=args.views, entry=args.entry, check_images=not args.no_check_images
    )
    return build_mimic_cxr(args.root, args.reports, args.out or args.root, options)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    runner = run_iu_xray if args.dataset == "iu_xray" else run_mimic_cxr
    try:
        manifest_path = runner(args)
    except (OSError, ValueError, DownloadError) as error:
        logger.error("Build of %s failed: %s", args.dataset, error)
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    print(f"annotation: {manifest_path.parent / manifest['annotation']['file']}")
    print(f"manifest:   {manifest_path} (sha256 {sha256_file(manifest_path)})")
    print("counts:     " + ", ".join(f"{split}={count}" for split, count in manifest["counts"].items()))
    print(f"dropped:    {manifest['dropped_total']} {manifest['dropped_by_reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
