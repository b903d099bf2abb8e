"""Markdown tables and tracker scalars for baseline results and for a run's test metrics beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from r2gen.evaluation import NLG_KEYS

CE_COLUMNS = ("ce_f1_micro_14", "ce_f1_macro_14", "ce_f1_micro_5")
DIAGNOSTIC_COLUMNS = ("empty_generation_rate", "mean_hypothesis_words", "mean_reference_words",
                      "repeated_sentence_rate", "distinct_1", "distinct_2", "training_copy_rate")
# The metrics on which a trained model must beat the trivial systems.
BAR_METRICS = ("BLEU_4", "ROUGE_L", "CIDEr")
RUN_ROW = "this run"


def format_cell(metrics: Mapping[str, Any], key: str) -> str:
    """Format a metric with its bootstrap interval when ``metrics["bootstrap"]`` has one."""
    value = metrics.get(key)
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    interval = (metrics.get("bootstrap") or {}).get(key)
    if interval is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"


def markdown_table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str], first: str = "system") -> str:
    """Render one Markdown row per entry of ``rows``; a column no row has is left out."""
    present = [column for column in columns if any(row.get(column) is not None for row in rows.values())]
    lines = ["| " + " | ".join([first, *present]) + " |", "|" + "---|" * (len(present) + 1)]
    for name, metrics in rows.items():
        lines.append("| " + " | ".join([name, *(format_cell(metrics, column) for column in present)]) + " |")
    return "\n".join(lines)


def metric_and_diagnostic_tables(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Render the metric table (NLG and CE, with intervals) and the diagnostics table of ``rows``."""
    diagnostics = {name: metrics.get("diagnostics") or {} for name, metrics in rows.items()}
    return (markdown_table(rows, [*NLG_KEYS, *CE_COLUMNS]) + "\n\nReport diagnostics:\n\n"
            + markdown_table(diagnostics, DIAGNOSTIC_COLUMNS))


def baselines_markdown(document: Mapping[str, Any]) -> str:
    """Render a ``compute_baselines`` result as a Markdown section."""
    systems = {name: entry["metrics"] for name, entry in document["systems"].items()}
    header = (f"Baselines on {document['data']} / {document['split']} ({document['studies']} studies, "
              f"{document['training_reports']} training reports; dataset {document['key']['fingerprint']})")
    return header + "\n\n" + metric_and_diagnostic_tables(systems)


def margins(run_metrics: Mapping[str, Any], systems: Mapping[str, Mapping[str, Any]],
            keys: Sequence[str] = BAR_METRICS) -> dict[str, dict[str, float | None]]:
    """Return run minus baseline for each system and metric (None where either value is missing)."""
    result: dict[str, dict[str, float | None]] = {}
    for name, metrics in systems.items():
        result[name] = {}
        for key in keys:
            run_value, baseline_value = run_metrics.get(key), metrics.get(key)
            missing = run_value is None or baseline_value is None
            result[name][key] = None if missing else float(run_value) - float(baseline_value)
    return result


def comparison_table(run_metrics: Mapping[str, Any], systems: Mapping[str, Mapping[str, Any]]) -> str:
    """Render a run's test metrics above the baselines' and list, per baseline, whether the run beats it."""
    rows = {RUN_ROW: run_metrics, **systems}
    lines = [metric_and_diagnostic_tables(rows), ""]
    for name, differences in margins(run_metrics, systems).items():
        known = {key: value for key, value in differences.items() if value is not None}
        beaten = all(value > 0 for value in known.values()) and len(known) == len(BAR_METRICS)
        detail = ", ".join(f"{key} {value:+.4f}" for key, value in known.items())
        lines.append(f"- against {name}: {'beats it' if beaten else 'does NOT beat it'} on "
                     f"{'/'.join(BAR_METRICS)} ({detail})")
    return "\n".join(lines)


def run_summary_scalars(systems: Mapping[str, Mapping[str, Any]],
                        run_metrics: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Flatten baseline metrics (and the run's margins over them) into ``baseline/...`` tracker keys."""
    scalars: dict[str, float] = {}
    for name, metrics in systems.items():
        for key in (*NLG_KEYS, *CE_COLUMNS):
            if isinstance(metrics.get(key), (int, float)):
                scalars[f"baseline/{name}/{key}"] = float(metrics[key])
    if run_metrics is not None:
        for name, differences in margins(run_metrics, systems).items():
            for key, value in differences.items():
                if value is not None:
                    scalars[f"baseline_margin/{name}/{key}"] = value
    return scalars
