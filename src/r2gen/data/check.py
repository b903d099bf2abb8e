"""Validate a dataset described by a data config: `python -m r2gen.data.check data=covid_cxr`.

Arguments of the form `key=value` are Hydra overrides, composed on `<repo>/conf/config.yaml` the way
the training runner composes them (`--config-dir` or R2GEN_CONF_DIR picks another folder). Without
overrides, `--root`, `--annotation`, `--image-dir` and `--cleaning` describe the dataset directly.
The exit status is 0 when the data is usable, 1 when validation fails, and 2 when the annotation file
or the config cannot be read.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from r2gen.data.annotation import DEFAULT_SPLITS, AnnotationError, Study, load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.manifest import dataset_fingerprint
from r2gen.data.validate import DataValidationError, ValidationReport, validate_studies

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[3] / "conf"


@dataclass
class CheckedDataset:
    """A validated dataset: the studies to use, the validation report and the data's fingerprint."""

    studies: dict[str, list[Study]]
    report: ValidationReport
    fingerprint: str
    annotation_path: Path
    image_root: Path


def check_dataset(
    root: Path,
    annotation: str = "annotation.json",
    image_dir: str = "images",
    cleaning: str = "none",
    on_invalid: str = "error",
    decode_images: bool = True,
    splits: Sequence[str] = DEFAULT_SPLITS,
) -> CheckedDataset:
    """Load and validate a dataset; raise `AnnotationError` or `DataValidationError` when unusable.

    Logs the dataset fingerprint (the sha256 of its build manifest, or of the annotation file when
    there is no manifest) so every run's metrics can be traced to the data they came from.
    """
    root = Path(root)
    annotation_path = root / annotation
    image_root = root / image_dir
    # Repeated ids are left to validate_studies, so on_invalid=skip can drop them.
    studies = load_annotation(annotation_path, splits, check_duplicates=False)
    fingerprint = dataset_fingerprint(annotation_path)
    logger.info("Dataset %s: fingerprint %s", annotation_path, fingerprint)
    clean = functools.partial(clean_report, rules=cleaning)
    kept, report = validate_studies(
        studies, image_root, clean, on_invalid=on_invalid, decode_images=decode_images, splits=splits
    )
    return CheckedDataset(kept, report, fingerprint, annotation_path, image_root)


def check_data_config(data: Mapping[str, Any], decode_images: bool | None = None) -> CheckedDataset:
    """Run `check_dataset` on a data config.

    Reads the fields root, annotation, image_dir, cleaning, on_invalid, splits and decode_check.
    All but root and annotation are optional, with defaults images, none, error, train/val/test
    and true. `decode_images`, when given, overrides decode_check.
    """
    missing = [key for key in ("root", "annotation") if key not in data]
    if missing:
        raise ValueError(f"data config {data.get('name', '?')!r} lacks field(s) {missing}; add them")
    return check_dataset(
        root=Path(str(data["root"])),
        annotation=str(data["annotation"]),
        image_dir=str(data.get("image_dir", "images")),
        cleaning=str(data.get("cleaning", "none")),
        on_invalid=str(data.get("on_invalid", "error")),
        decode_images=bool(data.get("decode_check", True)) if decode_images is None else decode_images,
        splits=tuple(data.get("splits", DEFAULT_SPLITS)),
    )


def compose_data_config(overrides: Sequence[str], config_dir: Path | None = None) -> Mapping[str, Any]:
    """Compose `config.yaml` with Hydra overrides and return its resolved `data` node as a dict."""
    config_dir = Path(config_dir or os.environ.get("R2GEN_CONF_DIR") or DEFAULT_CONFIG_DIR).resolve()
    if not (config_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{config_dir}/config.yaml not found; pass --config-dir or use --root flags")
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(config_name="config", overrides=list(overrides))
    if "data" not in config:
        raise ValueError(f"{config_dir}/config.yaml composes no 'data' node; pass data=<name>")
    return OmegaConf.to_container(config.data, resolve=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r2gen.data.check", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=covid_cxr")
    parser.add_argument("--config-dir", type=Path, help=f"Hydra config folder (default: {DEFAULT_CONFIG_DIR})")
    parser.add_argument("--root", type=Path, help="dataset folder, used when no overrides are given")
    parser.add_argument("--annotation", default="annotation.json", help="annotation file relative to --root")
    parser.add_argument("--image-dir", default="images", help="image folder relative to --root")
    parser.add_argument("--cleaning", default="none", choices=("iu_xray", "mimic_cxr", "none"),
                        help="report cleaning rules applied before the empty-report check")
    parser.add_argument("--on-invalid", default=None, choices=("error", "skip"),
                        help="error: fail on any bad entry; skip: drop and count bad entries")
    parser.add_argument("--splits", default=",".join(DEFAULT_SPLITS),
                        help="comma-separated splits that must be present and non-empty (default: %(default)s)")
    parser.add_argument("--no-decode", action="store_true", help="check that images exist without decoding them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.overrides:
            data = dict(compose_data_config(args.overrides, args.config_dir))
            if args.on_invalid:
                data["on_invalid"] = args.on_invalid
            checked = check_data_config(data, decode_images=not args.no_decode)
        elif args.root is not None:
            checked = check_dataset(
                args.root, args.annotation, args.image_dir, args.cleaning,
                args.on_invalid or "error", decode_images=not args.no_decode,
                splits=tuple(split for split in args.splits.split(",") if split),
            )
        else:
            build_parser().error("pass Hydra overrides such as data=covid_cxr, or --root")
    except (AnnotationError, HydraException, FileNotFoundError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except DataValidationError as error:
        print(error, file=sys.stderr)
        return 1
    print(checked.report.summary())
    print(f"Fingerprint: {checked.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
