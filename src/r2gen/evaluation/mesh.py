"""Agreement of a CheXpert labeler with the MeSH terms that human indexers gave Open-i reports.

The Open-i (Indiana University) chest X-ray reports carry MeSH headings such as
``Pleural Effusion/bilateral/small`` or ``Cardiomegaly/borderline``: a heading, then qualifiers.
Indexers list findings that are present and nothing that is absent, so the comparison is one of
positives: an observation counts as present when one of its MeSH rules below matches, and as
absent otherwise. A report whose only heading is ``normal`` has No Finding present.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from r2gen.evaluation.labels import OBSERVATIONS, POSITIVE, UNCERTAIN, ReportLabels


@dataclass(frozen=True)
class MeshRule:
    """A MeSH heading with optional qualifier conditions.

    ``requires``: at least one of these qualifiers; ``requires_all``: every one of them;
    ``excludes``: none of them.
    """

    heading: str
    requires: tuple[str, ...] = ()
    requires_all: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def matches(self, term: str) -> bool:
        heading, *qualifiers = [part.strip().lower() for part in term.split("/")]
        if heading != self.heading.lower():
            return False
        if self.requires and not any(q in qualifiers for q in self.requires):
            return False
        if not all(q in qualifiers for q in self.requires_all):
            return False
        return not any(q in qualifiers for q in self.excludes)


_LUNG_SITES = ("lung", "retrocardiac")
_BONE_SITES = ("humerus", "shoulder", "cervical vertebrae", "thoracic vertebrae", "lumbar vertebrae", "spine")

# Only headings whose meaning matches the CheXpert observation are mapped. Everything not listed
# (Calcified Granuloma, Cicatrix of the lung, Costophrenic Angle/blunted, Surgical Instruments,
# Lung/hypoinflation, ...) counts as no evidence for any observation.
MESH_RULES: dict[str, tuple[MeshRule, ...]] = {
    "Enlarged Cardiomediastinum": (
        MeshRule("Mediastinum", requires=("prominent", "enlarged", "widened"),
                 excludes=("lymph nodes", "blood vessels", "paratracheal")),
    ),
    "Cardiomegaly": (MeshRule("Cardiomegaly"), MeshRule("Cardiac Shadow", requires=("enlarged",))),
    "Lung Opacity": (
        MeshRule("Opacity", requires=_LUNG_SITES),
        MeshRule("Airspace Disease"),
        MeshRule("Infiltrate"),
        MeshRule("Density", requires=_LUNG_SITES),
    ),
    # Indexers coded "nodular density" and "nodular opacity" as a round Density or Opacity.
    "Lung Lesion": (
        MeshRule("Nodule", requires=("lung",)),
        MeshRule("Mass", requires=("lung",)),
        MeshRule("Density", requires=_LUNG_SITES, requires_all=("round",)),
        MeshRule("Opacity", requires=_LUNG_SITES, requires_all=("round",)),
    ),
    "Edema": (MeshRule("Pulmonary Edema"), MeshRule("Pulmonary Congestion"), MeshRule("Heart Failure")),
    "Consolidation": (MeshRule("Consolidation"),),
    "Pneumonia": (MeshRule("Pneumonia"),),
    "Atelectasis": (MeshRule("Pulmonary Atelectasis"),),
    "Pneumothorax": (MeshRule("Pneumothorax"), MeshRule("Hydropneumothorax"), MeshRule("Hemopneumothorax")),
    "Pleural Effusion": (MeshRule("Pleural Effusion"), MeshRule("Hydropneumothorax")),
    "Pleural Other": (
        MeshRule("Thickening", requires=("pleura",)),
        MeshRule("Cicatrix", requires=("pleura",)),
        MeshRule("Calcinosis", requires=("pleura",)),
    ),
    "Fracture": (MeshRule("Fractures, Bone"),),
    "Support Devices": (
        MeshRule("Catheters, Indwelling"),
        MeshRule("Implanted Medical Device", excludes=_BONE_SITES),
        MeshRule("Tube, Inserted"),
        MeshRule("Medical Device", excludes=_BONE_SITES),
        MeshRule("Stents"),
    ),
}
_UNINDEXED = "no indexing"


@dataclass(frozen=True)
class OpenIReport:
    """One Open-i report: its id (the XML file stem), findings, impression and major MeSH terms."""

    report_id: str
    findings: str
    impression: str
    mesh_terms: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.findings}\n{self.impression}".strip()


def read_openi_reports(archive: Path) -> list[OpenIReport]:
    """Read every ``ecgen-radiology/*.xml`` report of an Open-i tgz, in file-name order."""
    if not archive.is_file():
        raise FileNotFoundError(f"Open-i report archive not found: {archive}; pass NLMCXR_reports.tgz")
    reports = []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")),
                         key=lambda m: m.name)
        for member in members:
            handle = tar.extractfile(member)
            assert handle is not None
            reports.append(_parse_report(Path(member.name).stem, handle.read()))
    if not reports:
        raise ValueError(f"no XML reports found in {archive}; expected ecgen-radiology/*.xml entries")
    return reports


def _parse_report(report_id: str, content: bytes) -> OpenIReport:
    root = ElementTree.fromstring(content)
    sections = {node.get("Label"): (node.text or "").strip() for node in root.iter("AbstractText")}
    mesh = root.find("MeSH")
    terms = () if mesh is None else tuple((node.text or "").strip() for node in mesh if node.tag == "major")
    return OpenIReport(report_id, sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""), terms)


def mesh_observations(terms: Sequence[str]) -> set[str]:
    """Return the CheXpert observations that these MeSH terms mark as present."""
    present = {name for name, rules in MESH_RULES.items() if any(r.matches(t) for r in rules for t in terms)}
    if [t.strip().lower() for t in terms] == ["normal"]:
        present.add("No Finding")
    return present


class Labeler(Protocol):
    def label_reports(self, reports: Sequence[str]) -> list[ReportLabels]: ...


@dataclass
class AgreementRow:
    """Counts and scores of one observation: labeler positives against MeSH positives."""

    observation: str
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def support(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 0.0


@dataclass
class MeshAgreement:
    """Per-observation agreement, the micro average and how many reports were used or skipped."""

    rows: list[AgreementRow]
    reports_used: int
    reports_skipped: dict[str, int] = field(default_factory=dict)
    uncertain_as_positive: bool = True

    @property
    def micro(self) -> AgreementRow:
        total = AgreementRow("micro (14)")
        for row in self.rows:
            total.true_positives += row.true_positives
            total.false_positives += row.false_positives
            total.false_negatives += row.false_negatives
        return total


def compute_mesh_agreement(
    reports: Sequence[OpenIReport], labeler: Labeler, uncertain_as_positive: bool = True
) -> MeshAgreement:
    """Label the findings and impression of each indexed report and compare with its MeSH terms.

    Reports without MeSH terms, marked ``No Indexing`` or without findings and impression text
    are skipped and counted by reason.
    """
    skipped = {"no MeSH terms": 0, "No Indexing": 0, "no findings or impression": 0}
    used = []
    for report in reports:
        if not report.mesh_terms:
            skipped["no MeSH terms"] += 1
        elif any(term.strip().lower() == _UNINDEXED for term in report.mesh_terms):
            skipped["No Indexing"] += 1
        elif not report.text:
            skipped["no findings or impression"] += 1
        else:
            used.append(report)
    predicted_values = (POSITIVE, UNCERTAIN) if uncertain_as_positive else (POSITIVE,)
    rows = {name: AgreementRow(name) for name in OBSERVATIONS}
    for report, labels in zip(used, labeler.label_reports([r.text for r in used])):
        present = mesh_observations(report.mesh_terms)
        for name, row in rows.items():
            predicted = labels[name] in predicted_values
            actual = name in present
            row.true_positives += predicted and actual
            row.false_positives += predicted and not actual
            row.false_negatives += actual and not predicted
    return MeshAgreement(list(rows.values()), len(used), skipped, uncertain_as_positive)


def format_agreement_table(agreement: MeshAgreement) -> str:
    """Render the agreement as a Markdown table with precision, recall, F1 and support."""
    lines = [
        "| Observation | Precision | Recall | F1 | Support (MeSH positives) | Labeler positives |",
        "|---|---|---|---|---|---|",
    ]
    for row in [*agreement.rows, agreement.micro]:
        predicted = row.true_positives + row.false_positives
        lines.append(
            f"| {row.observation} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} "
            f"| {row.support} | {predicted} |"
        )
    return "\n".join(lines)
