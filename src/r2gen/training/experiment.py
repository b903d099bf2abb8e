"""One run from a composed config: validate data, build, train, select, test, write the results."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from r2gen.data.manifest import dataset_fingerprint
from r2gen.training.artifacts import write_metrics, write_run_info
from r2gen.training.build import build_loaders, build_model, build_scorer, load_studies
from r2gen.training.checkpoint import load_trainable
from r2gen.training.config import DataConfig, LoggerConfig, TrainerConfig
from r2gen.training.logs import install_rank_filter
from r2gen.training.trackers import build_tracker
from r2gen.training.trainer import Trainer, peak_memory_mb, scalar_metrics

log = logging.getLogger(__name__)


def build_accelerator(trainer: TrainerConfig) -> Accelerator:
    """Accelerator for this process; ``accelerate launch`` decides DDP, FSDP or DeepSpeed."""
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision="bf16" if trainer.precision == "bf16" else "no",
        gradient_accumulation_steps=trainer.grad_accumulation,
        # Seeded sampler: the shuffle order depends only on (seed, epoch), on 1 or N processes.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run training (unless ``eval_only``) and testing; return the final metrics."""
    install_rank_filter()
    trainer_cfg: TrainerConfig = instantiate(cfg.trainer)
    data_cfg: DataConfig = instantiate(cfg.data)
    logger_cfg: LoggerConfig = instantiate(cfg.logger)
    evaluation_cfg = instantiate(cfg.evaluation)
    generation = instantiate(cfg.generation)
    if trainer_cfg.torch_threads:
        torch.set_num_threads(trainer_cfg.torch_threads)

    accelerator = build_accelerator(trainer_cfg)
    set_seed(trainer_cfg.seed)
    splits = ["test"] if cfg.eval_only else list(data_cfg.splits)
    studies = load_studies(data_cfg, splits)

    model = build_model(cfg, trainer_cfg)
    if cfg.checkpoint:
        load_trainable(model, Path(cfg.checkpoint))
        log.info("loaded trainable weights from %s", cfg.checkpoint)
    loaders = build_loaders(studies, data_cfg, model, trainer_cfg.batch_size, trainer_cfg.eval_batch_size,
                            trainer_cfg.num_workers, trainer_cfg.eval_max_samples)
    fingerprint = dataset_fingerprint(data_cfg.annotation_path)
    log.info("dataset %s fingerprint %s", data_cfg.name, fingerprint)
    if accelerator.is_main_process:
        write_run_info(run_dir, OmegaConf.to_yaml(cfg, resolve=True),
                       {"world_size": accelerator.num_processes, "data_fingerprint": fingerprint})
    tracker = build_tracker(logger_cfg, run_dir, OmegaConf.to_container(cfg, resolve=True),
                            accelerator.is_main_process)
    training_reports = list(loaders["train"].dataset.reports) if "train" in loaders else []
    trainer = Trainer(model, loaders, trainer_cfg, generation,
                      build_scorer(evaluation_cfg, training_reports, bootstrap=False),
                      run_dir, accelerator, tracker)
    return _train_and_test(cfg, trainer, evaluation_cfg, training_reports, tracker)


def _train_and_test(cfg: DictConfig, trainer: Trainer, evaluation_cfg: Any, training_reports: list[str],
                    tracker: Any) -> dict[str, Any]:
    start = time.perf_counter()
    summary: dict[str, Any] = {}
    if not cfg.eval_only:
        if cfg.resume:
            trainer.resume()
        summary = trainer.fit()
    trainer.scorer = build_scorer(evaluation_cfg, training_reports, bootstrap=True)
    test_metrics = trainer.test()
    results = {"test": test_metrics, "train": summary, "seconds": time.perf_counter() - start,
               "peak_memory_mb": peak_memory_mb()}
    if trainer.accelerator.is_main_process:
        write_metrics(trainer.run_dir / "metrics.json", results)
        tracker.log({f"final/test/{k}": v for k, v in scalar_metrics(test_metrics).items()},
                    step=trainer.state.step)
        log.info("results written to %s", trainer.run_dir)
    tracker.finish()
    trainer.accelerator.end_training()
    return results


def selection_value(results: dict[str, Any], cfg: DictConfig) -> float | None:
    """The best validation selection score, or None for an evaluation-only run."""
    return results.get("train", {}).get("best_score")
