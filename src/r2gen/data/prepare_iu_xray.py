"""Build an R2Gen-layout IU X-ray dataset from the Open-i files NLMCXR_reports.tgz and NLMCXR_png.tgz.

Open-i stores one XML report per study (`ecgen-radiology/<n>.xml`) with COMPARISON, INDICATION,
FINDINGS and IMPRESSION sections and a list of `parentImage` ids such as `CXR1005_IM-0006-1001`.
The R2Gen conventions this builder follows, checked against R2Gen's released annotation:

- the study id is the first `parentImage` id without its last `-NNNN` part (`CXR1005_IM-0006`);
- image n of a study is the n-th `parentImage`, stored as `images/<study id>/<n>.png`;
- the report is the section text exactly as in the XML.
"""

from __future__ import annotations

import logging
import tarfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from r2gen.data.manifest import Dropped, Manifest, SourceFile, write_build, write_bytes_atomic
from r2gen.data.prepare_splits import SPLIT_NAMES, assign_group_splits, read_split_membership

logger = logging.getLogger(__name__)

BUILDER_VERSION = "1"
OPENI_BASE_URL = "https://openi.nlm.nih.gov/imgs/collections"
REPORTS_ARCHIVE = "NLMCXR_reports.tgz"
IMAGES_ARCHIVE = "NLMCXR_png.tgz"
SECTION_CHOICES = ("findings", "impression", "both")


@dataclass(frozen=True)
class OpenIReport:
    """One Open-i XML report: its number, section texts and image ids in `parentImage` order."""

    number: int
    sections: dict[str, str]
    image_ids: tuple[str, ...]

    @property
    def study_id(self) -> str:
        return self.image_ids[0].rsplit("-", 1)[0]


@dataclass
class IuXrayOptions:
    """Options of an IU X-ray build; every field is recorded in the manifest."""

    section: str = "findings"
    min_images: int = 2
    max_images: int = 2
    seed: int = 0
    ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_from: str | None = None
    reports_only: bool = False

    def __post_init__(self) -> None:
        if self.section not in SECTION_CHOICES:
            raise ValueError(f"section {self.section!r} is invalid; use one of {SECTION_CHOICES}")
        if self.min_images < 1:
            raise ValueError(f"min_images={self.min_images} is invalid; use 1 or more")
        if self.max_images and self.max_images < self.min_images:
            raise ValueError(
                f"max_images={self.max_images} is below min_images={self.min_images}; "
                "raise max_images or use 0 for all images"
            )


def read_openi_reports(archive: Path) -> list[OpenIReport]:
    """Parse every `*.xml` report in an Open-i reports tarball, sorted by report number."""
    reports = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if not member.isfile() or name.suffix != ".xml":
                continue
            try:
                root = ElementTree.fromstring(tar.extractfile(member).read())
            except ElementTree.ParseError as error:
                raise ValueError(f"{archive}: {member.name} is not valid XML ({error})") from error
            sections = {
                element.get("Label", "").upper(): element.text or ""
                for element in root.iter("AbstractText")
            }
            image_ids = tuple(element.get("id") for element in root.findall("parentImage"))
            reports.append(OpenIReport(int(name.stem), sections, image_ids))
    if not reports:
        raise ValueError(f"{archive}: no XML reports found; pass the Open-i {REPORTS_ARCHIVE}")
    return sorted(reports, key=lambda report: report.number)


def select_section(sections: dict[str, str], section: str) -> str | None:
    """Return the report text for `section` ("findings", "impression" or "both"), or None if empty.

    "both" is findings followed by impression, joined by one space; a study needs at least one.
    """
    findings = sections.get("FINDINGS", "")
    impression = sections.get("IMPRESSION", "")
    if section == "findings":
        parts = [findings]
    elif section == "impression":
        parts = [impression]
    elif section == "both":
        parts = [findings, impression]
    else:
        raise ValueError(f"section {section!r} is invalid; use one of {SECTION_CHOICES}")
    text = " ".join(part for part in parts if part.strip())
    return text or None


def build_iu_xray(
    reports_archive: Path, images_source: Path | None, out_dir: Path, options: IuXrayOptions
) -> Path:
    """Build `annotation.json`, `manifest.json` and `images/` in `out_dir`; return the manifest path.

    `images_source` is NLMCXR_png.tgz or a folder of its PNG files. It may be None only with
    `options.reports_only`, which writes the annotation without extracting images.
    """
    if images_source is None and not options.reports_only:
        raise ValueError("IU X-ray build needs --images (NLMCXR_png.tgz) unless --reports-only is set")
    out_dir = Path(out_dir)
    reports = read_openi_reports(reports_archive)
    logger.info("Read %d Open-i reports from %s", len(reports), reports_archive)

    dropped: list[Dropped] = []
    candidates = _select_studies(reports, options, dropped)
    sources = [SourceFile.describe("reports", reports_archive)]
    membership: dict[str, str] = {}
    positions: dict[str, int] = {}
    if options.split_from is not None:
        membership, positions = read_split_membership(Path(options.split_from))
        sources.append(SourceFile.describe("split_from", Path(options.split_from)))
        candidates = _keep_members(candidates, membership, dropped)

    image_count = 0
    if not options.reports_only:
        candidates, images_file = _extract_images(Path(images_source), out_dir / "images", candidates, dropped)
        image_count = sum(len(candidate.image_ids) for candidate in candidates)
        sources.append(images_file)

    if options.split_from is None:
        annotation = _split_by_seed(candidates, options)
        notes = [f"seeded split by report number: seed {options.seed}, ratios {options.ratios}"]
    else:
        annotation = _split_by_membership(candidates, membership, positions)
        notes = [f"split membership and order copied from {options.split_from}"]
    manifest = Manifest(
        dataset="iu_xray",
        builder="r2gen.data.prepare iu_xray",
        builder_version=BUILDER_VERSION,
        options={**vars(options), "ratios": list(options.ratios)},
        sources=sources,
        images=image_count,
        dropped=dropped,
        notes=notes,
    )
    return write_build(out_dir, annotation, manifest)


@dataclass
class _Candidate:
    report: OpenIReport
    text: str
    image_ids: tuple[str, ...]

    def entry(self, split: str) -> dict:
        study_id = self.report.study_id
        paths = [f"{study_id}/{index}.png" for index in range(len(self.image_ids))]
        return {"id": study_id, "report": self.text, "image_path": paths, "split": split}


def _select_studies(
    reports: list[OpenIReport], options: IuXrayOptions, dropped: list[Dropped]
) -> list[_Candidate]:
    candidates = []
    seen: dict[str, int] = {}
    for report in reports:
        if not report.image_ids:
            dropped.append(Dropped(f"CXR{report.number}", "no images: the report lists no parentImage"))
            continue
        study_id = report.study_id
        if len(report.image_ids) < options.min_images:
            dropped.append(Dropped(
                study_id, f"too few images: {len(report.image_ids)} listed, --min-images is {options.min_images}"
            ))
            continue
        text = select_section(report.sections, options.section)
        if text is None:
            dropped.append(Dropped(study_id, f"no section: {options.section} text is missing or empty"))
            continue
        if study_id in seen:
            dropped.append(Dropped(study_id, f"duplicate study id: report {seen[study_id]} has it too"))
            continue
        seen[study_id] = report.number
        limit = options.max_images or len(report.image_ids)
        candidates.append(_Candidate(report, text, report.image_ids[:limit]))
    return candidates


def _extract_images(
    source: Path, images_dir: Path, candidates: list[_Candidate], dropped: list[Dropped]
) -> tuple[list[_Candidate], SourceFile]:
    """Copy each candidate's images to `images/<id>/<n>.png`; drop studies with a missing image.

    Returns the kept candidates and the manifest entry of `source`. Images already placed for a
    study that is then dropped are removed again, so `images/` matches the annotation.
    """
    requested: dict[str, Path] = {}
    for candidate in candidates:
        for index, image_id in enumerate(candidate.image_ids):
            requested[f"{image_id}.png"] = images_dir / candidate.report.study_id / f"{index}.png"
    found = _copy_pngs(source, requested)

    kept = []
    for candidate in candidates:
        names = [f"{image_id}.png" for image_id in candidate.image_ids]
        missing = [name[:-4] for name in names if name not in found]
        if not missing:
            kept.append(candidate)
            continue
        dropped.append(Dropped(
            candidate.report.study_id, f"missing image: {', '.join(missing)} not in {source.name}"
        ))
        for name in names:
            requested[name].unlink(missing_ok=True)
        if requested[names[0]].parent.is_dir() and not any(requested[names[0]].parent.iterdir()):
            requested[names[0]].parent.rmdir()
    logger.info("Found %d of %d requested images in %s", len(found), len(requested), source)
    if source.is_dir():
        return kept, SourceFile.describe_tree("images", source, [path for path in found.values() if path])
    return kept, SourceFile.describe("images", source)


def _copy_pngs(source: Path, requested: dict[str, Path]) -> dict[str, Path | None]:
    """Copy PNGs named in `requested` from a tarball (streamed once) or a folder.

    Returns {file name: path read}, with None as the path for tarball members.
    """
    found: dict[str, Path | None] = {}
    with tqdm(total=len(requested), unit="image", desc="images") as bar:
        if source.is_dir():
            for path in sorted(source.rglob("*.png")):
                if path.name in requested and path.name not in found:
                    _place(requested[path.name], path.read_bytes())
                    found[path.name] = path
                    bar.update(1)
            return found
        with tarfile.open(source, "r|*") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in requested and name not in found:
                    _place(requested[name], tar.extractfile(member).read())
                    found[name] = None
                    bar.update(1)
    return found


def _place(destination: Path, data: bytes) -> None:
    if destination.is_file() and destination.stat().st_size == len(data) and destination.read_bytes() == data:
        return
    write_bytes_atomic(destination, data)


def _keep_members(
    candidates: list[_Candidate], membership: dict[str, str], dropped: list[Dropped]
) -> list[_Candidate]:
    """Drop candidates absent from --split-from, and record its ids that no report produced."""
    kept = [candidate for candidate in candidates if candidate.report.study_id in membership]
    kept_ids = {candidate.report.study_id for candidate in kept}
    for candidate in candidates:
        if candidate.report.study_id not in kept_ids:
            dropped.append(Dropped(candidate.report.study_id, "not in --split-from file"))
    already_dropped = {item.id for item in dropped}
    for study_id in membership:
        if study_id not in kept_ids and study_id not in already_dropped:
            dropped.append(Dropped(study_id, "not in the Open-i reports: id of --split-from file"))
    return kept


def _split_by_membership(
    candidates: list[_Candidate], membership: dict[str, str], positions: dict[str, int]
) -> dict[str, list[dict]]:
    annotation: dict[str, list[dict]] = {split: [] for split in SPLIT_NAMES}
    for candidate in candidates:
        split = membership[candidate.report.study_id]
        annotation[split].append(candidate.entry(split))
    for split in SPLIT_NAMES:
        annotation[split].sort(key=lambda entry: positions[entry["id"]])
    return annotation


def _split_by_seed(candidates: list[_Candidate], options: IuXrayOptions) -> dict[str, list[dict]]:
    # NOTE: Open-i gives no patient id, so each report number is its own split group.
    annotation: dict[str, list[dict]] = {split: [] for split in SPLIT_NAMES}
    numbers = [str(candidate.report.number) for candidate in candidates]
    groups = assign_group_splits(numbers, options.ratios, options.seed)
    for number, candidate in zip(numbers, candidates):
        annotation[groups[number]].append(candidate.entry(groups[number]))
    return annotation
