"""Score trivial baselines on a split: ``python -m r2gen.baselines data=<data config> [overrides]``.

Prints the Markdown table and writes ``baselines.md``, ``baselines.json`` and one predictions JSONL
per system into the Hydra output folder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")

log = logging.getLogger("r2gen.baselines")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="baselines")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    from r2gen.training.baseline_tables import baselines_markdown
    from r2gen.training.baselines import BaselineDataError, cached_baselines, write_baseline_outputs

    try:
        document = cached_baselines(instantiate(cfg.data), cfg.encoder, instantiate(cfg.evaluation),
                                    instantiate(cfg.baseline), refresh=cfg.refresh)
    except BaselineDataError as error:
        log.error("cannot compute baselines: %s", error)
        sys.exit(2)
    paths = write_baseline_outputs(document, Path(HydraConfig.get().runtime.output_dir))
    log.info("wrote %s", ", ".join(str(path) for path in paths.values()))
    print(baselines_markdown(document))


if __name__ == "__main__":
    main()
