"""Train, validate and test a report generator: ``python -m r2gen.run [overrides]``.

Multi-process: ``accelerate launch --config_file conf/accelerate/ddp.yaml --num_processes N -m r2gen.run
[overrides]`` (on a CPU machine this file, or ``--multi_gpu``, is what starts real processes).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from r2gen.training.experiment import run_experiment, selection_value

    results = run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    # The return value is what Hydra sweepers (Optuna) optimise.
    return selection_value(results, cfg)


if __name__ == "__main__":
    main()
