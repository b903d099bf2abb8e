"""Build an R2Gen-layout MIMIC-CXR dataset from the official MIMIC-CXR-JPG files and report texts.

Inputs under the MIMIC-CXR-JPG root (PhysioNet layout, version 2.0.0 or 2.1.0):

    mimic-cxr-2.0.0-split.csv[.gz]      dicom_id, study_id, subject_id, split (train/validate/test)
    mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, ..., ViewPosition, ...
    files/p10/p10000032/s50414267/<dicom_id>.jpg

Report texts come from MIMIC-CXR (not -JPG): `mimic-cxr-reports.zip`, or a folder, holding
`files/p10/p10000032/s50414267.txt`. Annotation image paths are relative to `<root>/files`, which the
build links as `<out>/images`, the image folder R2Gen's MIMIC annotation also assumes.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from r2gen.data.manifest import Dropped, Manifest, SourceFile, write_build
from r2gen.data.prepare_iu_xray import SECTION_CHOICES

logger = logging.getLogger(__name__)

BUILDER_VERSION = "1"
FRONTAL_VIEWS = ("PA", "AP")
VIEW_CHOICES = ("frontal", "all")
ENTRY_CHOICES = ("image", "study")
OFFICIAL_SPLITS = {"train": "train", "validate": "val", "test": "test"}

# A section header is an upper-case phrase at the start of a line, followed by a colon.
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&,()-]*[A-Z)])[ \t]*:", re.MULTILINE)
_SECTION_ALIASES = {"FINDING": "FINDINGS", "IMPRESSIONS": "IMPRESSION"}


@dataclass
class MimicCxrOptions:
    """Options of a MIMIC-CXR build; every field is recorded in the manifest."""

    section: str = "findings"
    views: str = "all"
    entry: str = "image"
    check_images: bool = True


@dataclass(frozen=True)
class _Image:
    dicom_id: str
    study_id: str
    subject_id: str
    split: str
    view: str

    @property
    def relative_path(self) -> str:
        return f"p{self.subject_id[:2]}/p{self.subject_id}/s{self.study_id}/{self.dicom_id}.jpg"


def extract_sections(report: str) -> dict[str, str]:
    """Split a MIMIC-CXR free-text report into {HEADER: text}, whitespace collapsed to single spaces.

    NOTE: only headers written as an upper-case phrase plus colon at a line start are found. Reports
    without a FINDINGS or IMPRESSION header yield no such section and are dropped by the builder.
    """
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(report))
    for position, match in enumerate(matches):
        end = matches[position + 1].start() if position + 1 < len(matches) else len(report)
        name = _SECTION_ALIASES.get(match.group(1).strip(), match.group(1).strip())
        text = " ".join(report[match.end():end].split())
        if text:
            sections[name] = f"{sections[name]} {text}" if name in sections else text
    return sections


def select_mimic_section(sections: dict[str, str], section: str) -> str | None:
    if section not in SECTION_CHOICES:
        raise ValueError(f"section {section!r} is invalid; use one of {SECTION_CHOICES}")
    parts = {
        "findings": [sections.get("FINDINGS")],
        "impression": [sections.get("IMPRESSION")],
        "both": [sections.get("FINDINGS"), sections.get("IMPRESSION")],
    }[section]
    text = " ".join(part for part in parts if part)
    return text or None


def build_mimic_cxr(root: Path, reports: Path | None, out_dir: Path, options: MimicCxrOptions) -> Path:
    """Build `annotation.json`, `manifest.json` and the `images` link in `out_dir`; return the manifest."""
    root, out_dir = Path(root), Path(out_dir)
    split_csv = _find_table(root, "split")
    metadata_csv = _find_table(root, "metadata")
    images = _read_images(split_csv, metadata_csv)
    logger.info("Read %d images of %d studies", len(images), len({image.study_id for image in images}))

    dropped: list[Dropped] = []
    images = _filter_images(root / "files", images, options, dropped)
    report_source = reports or _default_reports(root)
    texts, report_digest = _read_reports(report_source, {image.study_id: image for image in images})
    annotation = _make_entries(images, texts, options, dropped)

    _link_images(root / "files", out_dir / "images")
    manifest = Manifest(
        dataset="mimic_cxr",
        builder="r2gen.data.prepare mimic_cxr",
        builder_version=BUILDER_VERSION,
        options={**vars(options), "root": str(root)},
        sources=[SourceFile.describe("split", split_csv), SourceFile.describe("metadata", metadata_csv),
                 report_digest],
        images=sum(len(entry["image_path"]) for entries in annotation.values() for entry in entries),
        dropped=dropped,
        notes=["official MIMIC-CXR-JPG split; 'validate' is written as 'val'",
               "image paths are relative to <root>/files, linked as images/"],
    )
    return write_build(out_dir, annotation, manifest)


def _find_table(root: Path, kind: str) -> Path:
    """Return the newest-versioned `mimic-cxr-<version>-<kind>.csv.gz` (or `.csv`) under `root`."""
    matches = sorted(root.glob(f"mimic-cxr-*-{kind}.csv.gz")) or sorted(root.glob(f"mimic-cxr-*-{kind}.csv"))
    if not matches:
        raise FileNotFoundError(
            f"{root}: no mimic-cxr-<version>-{kind}.csv[.gz] found; pass the MIMIC-CXR-JPG root as --root"
        )
    return matches[-1]


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _read_images(split_csv: Path, metadata_csv: Path) -> list[_Image]:
    views = {row["dicom_id"]: row.get("ViewPosition", "") for row in _read_csv(metadata_csv)}
    images = []
    for row in _read_csv(split_csv):
        split = OFFICIAL_SPLITS.get(row["split"])
        if split is None:
            raise ValueError(f"{split_csv}: dicom {row['dicom_id']} has unknown split {row['split']!r}")
        images.append(_Image(row["dicom_id"], row["study_id"], row["subject_id"], split,
                             views.get(row["dicom_id"], "")))
    return sorted(images, key=lambda image: (image.subject_id, image.study_id, image.dicom_id))


def _filter_images(
    files_dir: Path, images: list[_Image], options: MimicCxrOptions, dropped: list[Dropped]
) -> list[_Image]:
    if options.views not in VIEW_CHOICES:
        raise ValueError(f"views {options.views!r} is invalid; use one of {VIEW_CHOICES}")
    kept = []
    for image in images:
        if options.views == "frontal" and image.view not in FRONTAL_VIEWS:
            dropped.append(Dropped(image.dicom_id, f"not frontal: ViewPosition {image.view or 'empty'}"))
        elif options.check_images and not (files_dir / image.relative_path).is_file():
            dropped.append(Dropped(image.dicom_id, f"missing image: files/{image.relative_path}"))
        else:
            kept.append(image)
    return kept


def _default_reports(root: Path) -> Path:
    for candidate in (root / "mimic-cxr-reports.zip", root.parent / "mimic-cxr-reports.zip"):
        if candidate.is_file():
            return candidate
    return root


def _read_reports(source: Path, studies: dict[str, _Image]) -> tuple[dict[str, str], SourceFile]:
    """Read the report of each study in `studies`; return texts and a SourceFile for the manifest.

    For a folder, the manifest checksum covers the report files read (names and contents).
    """
    source = Path(source)
    texts: dict[str, str] = {}
    if source.is_file():
        with zipfile.ZipFile(source) as archive:
            names = {Path(name).name: name for name in archive.namelist() if name.endswith(".txt")}
            for study_id in studies:
                if f"s{study_id}.txt" in names:
                    texts[study_id] = archive.read(names[f"s{study_id}.txt"]).decode("utf-8")
        return texts, SourceFile.describe("reports", source)

    read: list[Path] = []
    for study_id, image in sorted(studies.items()):
        path = source / f"files/p{image.subject_id[:2]}/p{image.subject_id}/s{study_id}.txt"
        if path.is_file():
            texts[study_id] = path.read_text(encoding="utf-8")
            read.append(path)
    if studies and not texts:
        raise FileNotFoundError(
            f"{source}: no report files files/pXX/pNNNNNNNN/sNNNNNNNN.txt found; pass --reports "
            "mimic-cxr-reports.zip (from MIMIC-CXR) or the folder it was unpacked to"
        )
    return texts, SourceFile.describe_tree("reports", source, read)


def _make_entries(
    images: list[_Image], texts: dict[str, str], options: MimicCxrOptions, dropped: list[Dropped]
) -> dict[str, list[dict]]:
    if options.entry not in ENTRY_CHOICES:
        raise ValueError(f"entry {options.entry!r} is invalid; use one of {ENTRY_CHOICES}")
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    by_study: dict[str, list[_Image]] = {}
    for image in images:
        by_study.setdefault(image.study_id, []).append(image)

    for study_id, study_images in by_study.items():
        if study_id not in texts:
            dropped.append(Dropped(f"s{study_id}", "missing report: no report file for the study"))
            continue
        text = select_mimic_section(extract_sections(texts[study_id]), options.section)
        if text is None:
            dropped.append(Dropped(f"s{study_id}", f"no section: {options.section} text is missing or empty"))
            continue
        first = study_images[0]
        if options.entry == "image":
            for image in study_images:
                annotation[image.split].append(_entry(image.dicom_id, text, [image], view=image.view))
        else:
            ordered = sorted(study_images, key=lambda image: (image.view not in FRONTAL_VIEWS, image.dicom_id))
            annotation[first.split].append(_entry(study_id, text, ordered, views=[i.view for i in ordered]))
    return annotation


def _entry(entry_id: str, text: str, images: list[_Image], **extra) -> dict:
    first = images[0]
    return {
        "id": entry_id,
        "report": text,
        "image_path": [image.relative_path for image in images],
        "split": first.split,
        "study_id": first.study_id,
        "subject_id": first.subject_id,
        **extra,
    }


def _link_images(files_dir: Path, link: Path) -> None:
    target = files_dir.resolve()
    if link.is_symlink() and link.resolve() == target:
        return
    if link.exists() or link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a link to {target}; remove it or choose another --out")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
