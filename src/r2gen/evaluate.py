"""Score a predictions JSONL file with the same code as a run's validation and test.

    python -m r2gen.evaluate outputs/run/predictions_test.jsonl
    python -m r2gen.evaluate preds.jsonl --config conf/evaluation/default.yaml --bootstrap-samples 200
    python -m r2gen.evaluate preds.jsonl --ablation blank=blank_preds.jsonl --ablation shuffled=shuf.jsonl
    python -m r2gen.evaluate --mesh-agreement ../shared/data/iu_xray/extras/NLMCXR_reports.tgz

Each line of a predictions file is ``{"id": ..., "reference": ..., "hypothesis": ...}``. The
metrics are written as JSON next to the input (``<name>.metrics.json``) unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from r2gen.evaluation import EvaluationConfig, compare_scores, read_predictions, score_reports, write_json_atomic
from r2gen.evaluation.ablation import check_ablation_records

logger = logging.getLogger("r2gen.evaluate")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m r2gen.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("predictions", nargs="?", type=Path, help="predictions JSONL (id, reference, hypothesis)")
    parser.add_argument("--config", type=Path, help="evaluation YAML such as conf/evaluation/default.yaml")
    parser.add_argument("--out", type=Path, help="metrics JSON path (default: <predictions>.metrics.json)")
    parser.add_argument("--ablation", action="append", default=[], metavar="[NAME=]PATH",
                        help="predictions made from blank or shuffled images, to compare with (repeatable)")
    parser.add_argument("--training-reports", type=Path,
                        help="JSONL with a 'report' field per line, or text with one report per line, "
                             "for the training-copy rate")
    parser.add_argument("--mesh-agreement", type=Path, metavar="NLMCXR_REPORTS_TGZ",
                        help="print the rule-based labeler's agreement with Open-i MeSH terms and exit")
    overrides = parser.add_argument_group("overrides of the evaluation config fields")
    overrides.add_argument("--nlg", action=argparse.BooleanOptionalAction, default=None)
    overrides.add_argument("--clinical", action=argparse.BooleanOptionalAction, default=None)
    overrides.add_argument("--diagnostics", action=argparse.BooleanOptionalAction, default=None)
    overrides.add_argument("--labeler", choices=["rules", "chexbert"])
    overrides.add_argument("--chexbert-checkpoint", help="path of chexbert.pth")
    overrides.add_argument("--chexbert-tokenizer", help="folder with bert-base-uncased vocab.txt")
    overrides.add_argument("--uncertain-policy", choices=["positive", "negative", "ignore"])
    overrides.add_argument("--bootstrap-samples", type=int, help="number of resamples; 0 turns intervals off")
    overrides.add_argument("--bootstrap-seed", type=int)
    overrides.add_argument("--confidence", type=float, help="interval coverage, e.g. 0.95")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> EvaluationConfig:
    """Start from ``--config`` (or the EvaluationConfig defaults) and apply the flag overrides."""
    values: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"evaluation config not found: {args.config}")
        loaded = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
        values = {key: value for key, value in loaded.items() if not key.startswith("_")}
    for field in dataclasses.fields(EvaluationConfig):
        override = getattr(args, field.name, None)
        if override is not None:
            values[field.name] = override
    known = {field.name for field in dataclasses.fields(EvaluationConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown evaluation config keys {unknown} in {args.config}; valid keys: {sorted(known)}")
    return EvaluationConfig(**values)


def read_training_reports(path: Path) -> list[str]:
    """Read training reports from JSONL (field ``report``) or plain text (one per line)."""
    if not path.is_file():
        raise FileNotFoundError(f"training reports file not found: {path}")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    reports = []
    for number, line in enumerate(lines, start=1):
        try:
            reports.append(str(json.loads(line)["report"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: non-blank line {number} is not a JSON object with a 'report' field ({error})"
            ) from error
    return reports


def format_table(metrics: dict[str, Any]) -> str:
    """Render the flat metrics, with their bootstrap interval when there is one, as aligned text."""
    intervals = metrics.get("bootstrap", {})
    lines = [f"{'metric':<26}{'value':>10}  interval"]
    for name, value in metrics.items():
        if isinstance(value, dict):
            continue
        formatted = "None" if value is None else f"{value:.4f}"
        interval = intervals.get(name)
        bounds = f"[{interval['low']:.4f}, {interval['high']:.4f}]" if isinstance(interval, dict) else ""
        lines.append(f"{name:<26}{formatted:>10}  {bounds}")
    return "\n".join(lines)


def format_comparison(name: str, comparison: dict[str, dict[str, float | None]]) -> str:
    lines = [f"ablation {name}", f"{'metric':<26}{'run':>10}{'ablation':>10}{'run - abl.':>12}"]
    for metric, row in comparison.items():
        cells = ["None" if row[key] is None else f"{row[key]:.4f}" for key in ("run", "ablation", "difference")]
        lines.append(f"{metric:<26}{cells[0]:>10}{cells[1]:>10}{cells[2]:>12}")
    return "\n".join(lines)


def _ablation_arguments(values: list[str]) -> list[tuple[str, Path]]:
    pairs = []
    for value in values:
        name, separator, path = value.partition("=")
        pairs.append((name, Path(path)) if separator else (Path(value).stem, Path(value)))
    return pairs


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score the predictions and any ablations, print the tables and write the JSON file."""
    config = build_config(args)
    records = read_predictions(args.predictions)
    training = read_training_reports(args.training_reports) if args.training_reports else []
    metrics = score_reports(records, config, training)
    output: dict[str, Any] = {"predictions": str(args.predictions), "studies": len(records),
                              "evaluation_config": config.to_dict(), "metrics": metrics}
    print(format_table(metrics))
    ablation_config = dataclasses.replace(config, bootstrap_samples=0)
    for name, path in _ablation_arguments(args.ablation):
        ablation_records = read_predictions(path)
        check_ablation_records(records, ablation_records, name)
        comparison = compare_scores(metrics, score_reports(ablation_records, ablation_config, training))
        output.setdefault("ablations", {})[name] = {"predictions": str(path), "comparison": comparison}
        print()
        print(format_comparison(name, comparison))
    out = args.out or args.predictions.with_name(args.predictions.stem + ".metrics.json")
    write_json_atomic(out, output)
    logger.info("Wrote %s", out)
    return output


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parse_args(argv)
    if args.mesh_agreement is not None:
        from r2gen.evaluation.mesh import compute_mesh_agreement, format_agreement_table, read_openi_reports
        from r2gen.evaluation.rules_labeler import RuleBasedLabeler

        agreement = compute_mesh_agreement(read_openi_reports(args.mesh_agreement), RuleBasedLabeler())
        print(format_agreement_table(agreement))
        return 0
    if args.predictions is None:
        logger.error("no predictions file given; run python -m r2gen.evaluate PREDICTIONS.jsonl")
        return 2
    try:
        run(args)
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
