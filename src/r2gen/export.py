"""Export a trained run as a model folder: ``python -m r2gen.export <run_dir> <output_dir> [--merge-lora]``.

The folder loads with ``python -m r2gen.predict run_dir=<output_dir> ...`` without the run directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m r2gen.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory written by r2gen.run")
    parser.add_argument("output_dir", type=Path, help="folder to create for the exported model")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trainable-only .safetensors file (default: <run_dir>/checkpoints/best.safetensors)")
    parser.add_argument("--merge-lora", action="store_true",
                        help="fold the encoder's LoRA adapters into its weights and store the whole encoder")
    parser.add_argument("--overwrite", action="store_true", help="replace output_dir if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    args = parse_args(argv)
    from r2gen.training.checkpoint import CheckpointError
    from r2gen.training.inference import ModelSourceError
    from r2gen.training.model_export import export_model

    try:
        output = export_model(args.run_dir, args.output_dir, args.checkpoint, args.merge_lora, args.overwrite)
    except (ModelSourceError, CheckpointError, FileExistsError) as error:
        logging.getLogger("r2gen.export").error("%s", error)
        raise SystemExit(2) from error
    print(output)


if __name__ == "__main__":
    main()
