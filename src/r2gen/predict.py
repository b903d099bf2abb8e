"""Write reports for new studies: ``python -m r2gen.predict run_dir=<run> images=[a.png,b.png]``.

Many studies: ``python -m r2gen.predict run_dir=<run> input=<folder or CSV> output=reports.jsonl``.
Options and formats are in ``conf/predict.yaml`` and ``docs/inference.md``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    # force: Hydra has already put a handler on the root logger that writes to stdout.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT, force=True)
    from r2gen.training.checkpoint import CheckpointError
    from r2gen.training.inference import ModelSourceError
    from r2gen.training.prediction import run_prediction
    from r2gen.training.study_inputs import StudyInputError

    try:
        rows, path = run_prediction(cfg)
    except (StudyInputError, ModelSourceError, CheckpointError) as error:
        logging.getLogger("r2gen.predict").error("%s", error)
        raise SystemExit(2) from error
    if cfg.images is not None:
        print(rows[0]["report"])
    else:
        print(f"wrote {len(rows)} report(s) to {path}")


if __name__ == "__main__":
    main()
