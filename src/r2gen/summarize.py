"""Summarize a sweep: ``python -m r2gen.summarize <multirun dir> [--metrics BLEU_4 CIDEr ...]``.

Writes ``summary.md`` and ``summary.csv`` into the sweep folder (or ``--output-dir``) and prints the
Markdown table. Jobs that failed are listed with their error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from r2gen.training.summary import DEFAULT_METRICS, summarize_sweep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m r2gen.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder Hydra printed, e.g. multirun/2025-01-31_12-00-00")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where to write summary.md and summary.csv (default: the sweep folder)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                        help="test metrics to show as columns, by their key in metrics.json (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        _, markdown = summarize_sweep(args.sweep_dir, args.output_dir, tuple(args.metrics))
    except FileNotFoundError as error:
        logging.getLogger("r2gen.summarize").error("%s", error)
        return 2
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
