"""The 14 CheXpert observations and the label values every labeler in this package returns."""

from __future__ import annotations

from typing import Final

# The 14 CheXpert observations (Irvin et al., AAAI 2019), No Finding first.
OBSERVATIONS: Final = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# The five observations most report-generation papers also report on their own.
COMMON_OBSERVATIONS: Final = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

# CheXpert's encoding: 1 positive, 0 negative, -1 uncertain, None blank (not mentioned).
POSITIVE: Final = 1
NEGATIVE: Final = 0
UNCERTAIN: Final = -1
Label = int | None
ReportLabels = dict[str, Label]

UNCERTAIN_POLICIES: Final = ("positive", "negative", "ignore")


def combine_mentions(labels: list[int]) -> Label:
    """Combine the labels of one observation's mentions: positive, else uncertain, else negative."""
    if not labels:
        return None
    if POSITIVE in labels:
        return POSITIVE
    if UNCERTAIN in labels:
        return UNCERTAIN
    return NEGATIVE


def derive_no_finding(labels: ReportLabels) -> Label:
    """Return positive when no pathology is positive or uncertain, else blank.

    Support Devices is not a pathology, so a device alone leaves No Finding positive. No Finding
    is never negative, so under any uncertain policy it is positive or not.
    """
    for name in OBSERVATIONS:
        if name in ("No Finding", "Support Devices"):
            continue
        if labels.get(name) in (POSITIVE, UNCERTAIN):
            return None
    return POSITIVE
