"""A static HTML page of a run's predictions: one self-contained file, no server needed.

The page shows the run's metrics and config, then one row per study. A row has the image
thumbnails (embedded as data URIs, each linking to its original file) and the reference and
generated reports with their word-level differences highlighted. It also has the sentence-level
BLEU-4, the CheXpert labels of both reports and the study's CE F1. Rows sort by either score in
the browser.
"""

from __future__ import annotations

import difflib
import html
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from r2gen.evaluation.labels import NEGATIVE, OBSERVATIONS, POSITIVE, UNCERTAIN, ReportLabels
from r2gen.training.html_assets import PAGE_CSS, PAGE_JS
from r2gen.training.io import write_text_atomic
from r2gen.training.report_rows import StudyRow, build_rows, read_metrics, read_predictions

log = logging.getLogger(__name__)

LABEL_SYMBOLS = {POSITIVE: "+", NEGATIVE: "\u2212", UNCERTAIN: "?", None: "\u00b7"}
LABEL_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain", None: "not mentioned"}
SORT_OPTIONS = (("index-asc", "original order"), ("bleu4-desc", "BLEU-4, high to low"),
                ("bleu4-asc", "BLEU-4, low to high"), ("ce-desc", "CE F1, high to low"),
                ("ce-asc", "CE F1, low to high"))


def word_diff(reference: str, hypothesis: str) -> tuple[str, str]:
    """Return both reports as HTML with unmatched words marked, comparing words case-insensitively.

    Reference words the generated report lacks get ``<mark class="missing">``; generated words
    the reference lacks get ``<mark class="added">``.
    """
    ref_words, hyp_words = reference.split(), hypothesis.split()
    matcher = difflib.SequenceMatcher(None, [w.lower() for w in ref_words], [w.lower() for w in hyp_words],
                                      autojunk=False)
    ref_parts: list[str] = []
    hyp_parts: list[str] = []
    for tag, ref_start, ref_end, hyp_start, hyp_end in matcher.get_opcodes():
        ref_text = html.escape(" ".join(ref_words[ref_start:ref_end]))
        hyp_text = html.escape(" ".join(hyp_words[hyp_start:hyp_end]))
        if tag == "equal":
            ref_parts.append(ref_text)
            hyp_parts.append(hyp_text)
            continue
        if ref_text:
            ref_parts.append(f'<mark class="missing">{ref_text}</mark>')
        if hyp_text:
            hyp_parts.append(f'<mark class="added">{hyp_text}</mark>')
    return _or_empty(" ".join(ref_parts)), _or_empty(" ".join(hyp_parts))


def _or_empty(text: str) -> str:
    return text or '<span class="empty">(empty)</span>'


def label_chips(reference: ReportLabels, hypothesis: ReportLabels) -> str:
    """Return one chip per observation that either report labels positive or uncertain."""
    chips = []
    for name in OBSERVATIONS:
        ref, hyp = reference.get(name), hypothesis.get(name)
        ref_found, hyp_found = ref in (POSITIVE, UNCERTAIN), hyp in (POSITIVE, UNCERTAIN)
        if not (ref_found or hyp_found):
            continue
        if ref_found and hyp_found:
            kind = "agree"
        elif ref_found:
            kind = "missed"
        else:
            kind = "extra"
        title = f"reference: {LABEL_NAMES[ref]}, generated: {LABEL_NAMES[hyp]}"
        chips.append(f'<span class="label {kind}" title="{title}">{html.escape(name)} '
                     f"{LABEL_SYMBOLS[ref]}/{LABEL_SYMBOLS[hyp]}</span>")
    return "".join(chips) or '<span class="empty">none</span>'


def _study_row(index: int, row: StudyRow, with_labels: bool) -> str:
    reference, hypothesis = word_diff(row.reference, row.hypothesis)
    images = "".join(
        f'<a href="{html.escape(path.resolve().as_uri())}"><img class="thumb" src="{uri}" '
        f'alt="{html.escape(path.name)}"></a>' for path, uri in row.images) or '<span class="empty">none</span>'
    ce_value = "" if row.ce_f1 is None else f"{row.ce_f1:.6f}"
    ce_text = "\u2013" if row.ce_f1 is None else f"{row.ce_f1:.3f}"
    labels = label_chips(row.reference_labels, row.hypothesis_labels) if with_labels else ""
    return (f'<tr class="study" data-index="{index}" data-id="{html.escape(row.id)}" '
            f'data-bleu4="{row.bleu4:.6f}" data-ce-f1="{ce_value}">'
            f'<td class="id">{html.escape(row.id)}</td><td class="images">{images}</td>'
            f'<td class="report reference">{reference}</td><td class="report generated">{hypothesis}</td>'
            f'<td class="bleu4">{row.bleu4:.3f}</td><td class="ce">{ce_text}</td>'
            f'<td class="labels">{labels}</td></tr>')


def _metrics_section(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return '<p class="muted">The run has no metrics.json.</p>'
    test = metrics.get("test") or {}
    intervals = test.get("bootstrap") or {}
    cells = [_metric_cell(key, value, intervals.get(key)) for key, value in test.items() if _is_number(value)]
    train = metrics.get("train") or {}
    summary = [_metric_cell(key, train[key]) for key in ("best_score", "best_epoch", "steps")
               if _is_number(train.get(key))]
    if _is_number(metrics.get("seconds")):
        summary.append(_metric_cell("seconds", metrics["seconds"]))
    confidence = intervals.get("confidence")
    interval_note = f" Brackets: {confidence:.0%} bootstrap interval." if _is_number(confidence) else ""
    return (f'<p class="muted">Test split.{interval_note}</p><div class="metrics">{"".join(cells)}</div>'
            f'<p class="muted">Training.</p><div class="metrics">{"".join(summary)}</div>')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_cell(name: str, value: float, interval: Any = None) -> str:
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    if isinstance(interval, dict) and _is_number(interval.get("low")) and _is_number(interval.get("high")):
        text += f' <span class="muted">[{interval["low"]:.4f}, {interval["high"]:.4f}]</span>'
    return f'<div class="metric"><span class="name">{html.escape(name)}</span> {text}</div>'


def render_page(title: str, rows: Sequence[StudyRow], metrics: dict[str, Any] | None, config_text: str,
                notes: Sequence[str], with_labels: bool = True) -> str:
    """Return the complete HTML document."""
    options = "".join(f'<option value="{value}">{text}</option>' for value, text in SORT_OPTIONS)
    mean_bleu = sum(row.bleu4 for row in rows) / len(rows) if rows else 0.0
    listed_notes = "".join(f"<li>{html.escape(note)}</li>" for note in notes[:50])
    if len(notes) > 50:
        listed_notes += f"<li>... and {len(notes) - 50} more</li>"
    notes_html = f'<div class="notes"><ul>{listed_notes}</ul></div>' if notes else ""
    body_rows = "\n".join(_study_row(index, row, with_labels) for index, row in enumerate(rows))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{PAGE_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="muted">{len(rows)} studies. Mean sentence-level BLEU-4 {mean_bleu:.4f} (the corpus BLEU-4 in the
metrics differs). <mark class="missing">Red</mark>: reference words missing from the generated report;
<mark class="added">green</mark>: generated words not in the reference. Labels show reference/generated:
+ positive, ? uncertain, \u2212 negative, \u00b7 not mentioned.</p>
<h2>Metrics</h2>
{_metrics_section(metrics)}
<details><summary>config.yaml</summary><pre class="config">{html.escape(config_text)}</pre></details>
{notes_html}
<div class="controls"><label for="sort">Sort by </label><select id="sort">{options}</select></div>
<table id="studies">
<colgroup><col class="id"><col class="images"><col><col><col class="score"><col class="score"><col class="labels"></colgroup>
<thead><tr><th>Study</th><th>Images</th><th>Reference</th><th>Generated</th>
<th data-sort="bleu4">BLEU-4</th><th data-sort="ce">CE F1</th><th>CheXpert labels</th></tr></thead>
<tbody>
{body_rows}
</tbody></table>
<script>{PAGE_JS}</script>
</body></html>
"""


def write_report(run_dir: Path, output: Path | None = None, split: str = "test", thumbnail_size: int | None = 160,
                 labels: bool = True) -> Path:
    """Write the results page of ``<run_dir>/predictions/<split>.jsonl`` and return its path.

    The default output is ``<run_dir>/report.html`` for the test split and
    ``<run_dir>/report_<split>.html`` otherwise.
    """
    run_dir = Path(run_dir).expanduser()
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found, so {run_dir} is not an r2gen run directory")
    config = OmegaConf.load(config_path)
    records = read_predictions(run_dir / "predictions" / f"{split}.jsonl")
    rows, notes = build_rows(records, config, split, thumbnail_size, labels)
    title = f"r2gen results: {run_dir.name} ({split})"
    page = render_page(title, rows, read_metrics(run_dir / "metrics.json"), config_path.read_text(encoding="utf-8"),
                       notes, labels)
    if output is None:
        output = run_dir / ("report.html" if split == "test" else f"report_{split}.html")
    write_text_atomic(Path(output), page)
    # The atomic write creates the file as 0600; give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    Path(output).chmod(0o666 & ~umask)
    log.info("wrote %s (%d studies, %d notes)", output, len(rows), len(notes))
    return output
