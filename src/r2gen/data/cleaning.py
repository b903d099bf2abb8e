"""Report cleaning rules of R2Gen (Chen et al., EMNLP 2020), which R2GenGPT and most papers reuse.

Scores are only comparable with published tables when references and targets are cleaned the same
way, so the two rule sets below reproduce R2Gen's behaviour, quirks included:

- "1. " is deleted anywhere in the text, not only as a list marker, which can fuse words
  ("@ L1. 1. Clear lungs" becomes "lclear lungs").
- The IU X-ray character class contains the range ':' to '[', so ``: ; < = > ? @`` are removed too.
  Hyphens and digits survive. The MIMIC-CXR rules keep colons and hyphens.
- Periods inside a sentence are removed, so "2.5 cm" becomes "25 cm".

One deliberate change: a report without any word left after cleaning becomes "" instead of R2Gen's
" .", so that empty reports can be detected and rejected.
"""

from __future__ import annotations

import re

RULES = ("iu_xray", "mimic_cxr", "none")

# Characters deleted inside each sentence, after quotes, slashes and backslashes are gone.
_IU_DELETED = re.compile(r"[.,?;*!%^&_+()\[\]{}:;<=>?@A-Z]")
_MIMIC_DELETED = re.compile(r"[.,?;*!%^&_+()\[\]{}]")

_NUMBERED_MARKERS = [(". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". "),
                     (" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". ")]


def _replace_repeatedly(text: str, old: str, new: str, passes: int) -> str:
    # R2Gen applies str.replace a fixed number of times, so very long runs are not fully collapsed.
    for _ in range(passes):
        text = text.replace(old, new)
    return text


def _remove_list_markers(text: str) -> str:
    text = text.replace("1. ", "")
    for old, new in _NUMBERED_MARKERS:
        text = text.replace(old, new)
    return text


def _clean_sentence(sentence: str, deleted: re.Pattern[str]) -> str:
    for char in ('"', "/", "\\", "'"):
        sentence = sentence.replace(char, "")
    return deleted.sub("", sentence.strip().lower())


def _join_sentences(sentences: list[str]) -> str:
    if not any(re.search(r"\w", sentence) for sentence in sentences):
        return ""
    return " . ".join(sentences) + " ."


def clean_iu_xray(report: str) -> str:
    """Clean an IU X-ray report with R2Gen's IU rules."""
    text = _replace_repeatedly(report, "..", ".", 3)
    text = _remove_list_markers(text)
    sentences = text.strip().lower().split(". ")
    return _join_sentences([_clean_sentence(s, _IU_DELETED) for s in sentences])


def clean_mimic_cxr(report: str) -> str:
    """Clean a MIMIC-CXR report with R2Gen's MIMIC rules (also R2Gen's rules for any other dataset)."""
    text = report.replace("\n", " ")
    text = _replace_repeatedly(text, "__", "_", 7)
    text = _replace_repeatedly(text, "  ", " ", 6)
    text = _replace_repeatedly(text, "..", ".", 8)
    text = _remove_list_markers(text)
    text = text.replace(":", " :")
    sentences = text.strip().lower().split(". ")
    return _join_sentences([_clean_sentence(s, _MIMIC_DELETED) for s in sentences])


def clean_whitespace(report: str) -> str:
    """Collapse whitespace only, for datasets whose text should reach the model as written."""
    return " ".join(report.split())


def clean_report(report: str, rules: str) -> str:
    """Clean ``report`` with the named rule set: "iu_xray", "mimic_cxr" or "none"."""
    if rules == "iu_xray":
        return clean_iu_xray(report)
    if rules == "mimic_cxr":
        return clean_mimic_cxr(report)
    if rules == "none":
        return clean_whitespace(report)
    raise ValueError(f"unknown cleaning rules {rules!r}; expected one of {', '.join(RULES)}")
