"""Write a static HTML page of a run's test predictions: ``python -m r2gen.report <run_dir>``.

The page (``<run_dir>/report.html`` by default) is one file with embedded thumbnails; open it in any
browser, no server needed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m r2gen.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory written by r2gen.run")
    parser.add_argument("--output", type=Path, default=None,
                        help="HTML file to write (default: <run_dir>/report.html)")
    parser.add_argument("--split", default="test",
                        help="predictions file to show, without .jsonl: test (default) or e.g. val_epoch3")
    parser.add_argument("--thumbnail-size", type=int, default=160,
                        help="maximum width and height of the embedded thumbnails in pixels; 0 leaves images out")
    parser.add_argument("--no-labels", action="store_true", help="skip the CheXpert labels and the CE F1 column")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    args = parse_args(argv)
    from r2gen.training.html_report import write_report

    try:
        output = write_report(args.run_dir, args.output, args.split, args.thumbnail_size, not args.no_labels)
    except (FileNotFoundError, ValueError) as error:
        logging.getLogger("r2gen.report").error("%s", error)
        raise SystemExit(2) from error
    print(output)


if __name__ == "__main__":
    main()
