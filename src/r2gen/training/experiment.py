"""One run from a composed config: validate data, build, train, select, test, write the results.

A run that raises still leaves ``error.txt`` (the traceback) and ``metrics.json`` with
``"status": "failed"`` in its directory, so ``python -m r2gen.summarize`` can list it. The error is
then raised again: Hydra's basic launcher records it, runs the remaining jobs of the sweep, and
exits with an error at the end.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from r2gen.data.manifest import dataset_fingerprint
from r2gen.models.tuning import parameter_table
from r2gen.training.artifacts import write_metrics, write_run_info
from r2gen.training.build import build_loaders, build_model, build_scorer, load_studies
from r2gen.training.checkpoint import load_trainable
from r2gen.training.config import DataConfig, LoggerConfig, TrainerConfig
from r2gen.training.io import write_text_atomic
from r2gen.training.jobs import JobInfo, job_info
from r2gen.training.logs import install_rank_filter
from r2gen.training.stats import peak_memory_mb, reset_peak_memory, scalar_metrics
from r2gen.training.trackers import build_tracker, check_logger_config
from r2gen.training.trainer import Trainer

log = logging.getLogger(__name__)

ERROR_FILE = "error.txt"


def build_accelerator(trainer: TrainerConfig) -> Accelerator:
    """Build the Accelerator of this process; ``accelerate launch`` decides DDP, FSDP or DeepSpeed."""
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision="bf16" if trainer.precision == "bf16" else "no",
        gradient_accumulation_steps=trainer.grad_accumulation,
        # Seeded sampler: the shuffle order depends only on (seed, epoch), on 1 or N processes.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    requested = [name for name in ("FSDP", "DEEPSPEED") if os.environ.get(f"ACCELERATE_USE_{name}") == "true"]
    if requested and accelerator.distributed_type.value not in requested:
        # Accelerate 1.16 runs FSDP and DeepSpeed on GPUs only and silently falls back to DDP on CPUs.
        log.warning("the launch config asks for %s, but Accelerate runs %s on this machine (no GPU), so the "
                    "model is replicated, not sharded", requested[0], accelerator.distributed_type.value)
    return accelerator


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run training (unless ``eval_only``) and testing; return the final metrics.

    On an exception, write ``error.txt`` and a failed ``metrics.json`` (main process only), then raise.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    try:
        return _run(cfg, run_dir, start)
    except Exception as error:
        record_failure(run_dir, error, time.perf_counter() - start)
        raise


def record_failure(run_dir: Path, error: BaseException, seconds: float) -> None:
    """Write the traceback to ``error.txt`` and ``{"status": "failed", ...}`` to ``metrics.json``."""
    if int(os.environ.get("RANK", "0")) != 0:  # set by `accelerate launch`, also before Accelerator exists
        return
    write_text_atomic(run_dir / ERROR_FILE, "".join(traceback.format_exception(error)))
    write_metrics(run_dir / "metrics.json", {"status": "failed", "error": f"{type(error).__name__}: {error}",
                                             "seconds": seconds, "peak_memory_mb": peak_memory_mb()})
    log.error("run failed with %s: %s; traceback in %s", type(error).__name__, error, run_dir / ERROR_FILE)


def _run(cfg: DictConfig, run_dir: Path, start: float) -> dict[str, Any]:
    install_rank_filter()
    reset_peak_memory()  # jobs of a sweep share one process
    # Every config is built first, so a misspelt key fails before any data or model is loaded.
    trainer_cfg: TrainerConfig = instantiate(cfg.trainer)
    logger_cfg: LoggerConfig = instantiate(cfg.logger)
    check_logger_config(logger_cfg)
    evaluation_cfg = instantiate(cfg.evaluation)
    generation = instantiate(cfg.generation)
    if trainer_cfg.torch_threads:
        torch.set_num_threads(trainer_cfg.torch_threads)
    accelerator = build_accelerator(trainer_cfg)
    set_seed(trainer_cfg.seed)

    model, loaders = _build_model_and_data(cfg, trainer_cfg, accelerator, run_dir)
    parameters = parameter_table(model)
    tracker = _start_tracker(cfg, logger_cfg, job_info(), run_dir, accelerator, parameters)
    try:
        training_reports = list(loaders["train"].dataset.reports) if "train" in loaders else []
        trainer = Trainer(model, loaders, trainer_cfg, generation,
                          build_scorer(evaluation_cfg, training_reports, bootstrap=False),
                          run_dir, accelerator, tracker)
        results = _train_and_test(cfg, trainer, evaluation_cfg, training_reports, start)
        results["parameters"] = _parameter_counts(parameters)
        _write_results(trainer, tracker, results)
    except BaseException:
        tracker.finish(failed=True)
        raise
    tracker.finish()
    # NOTE: this ends the process group, so a Hydra multirun under `accelerate launch` cannot start a second job.
    accelerator.end_training()
    return results


def _build_model_and_data(cfg: DictConfig, trainer_cfg: TrainerConfig, accelerator: Accelerator,
                          run_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Validate the data, build the model (loading ``checkpoint``) and the loaders, and write the run info."""
    data_cfg: DataConfig = instantiate(cfg.data)
    studies = load_studies(data_cfg, ["test"] if cfg.eval_only else list(data_cfg.splits))
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
                       {"world_size": accelerator.num_processes,
                        "distributed_type": accelerator.distributed_type.value, "data_fingerprint": fingerprint,
                        "overrides": job_info().overrides})
    return model, loaders


def _start_tracker(cfg: DictConfig, logger_cfg: LoggerConfig, job: JobInfo, run_dir: Path,
                   accelerator: Accelerator, parameters: list[dict[str, Any]]) -> Any:
    """Start the tracker with the sweep's group and the overrides as tags, and log the parameter table."""
    logger_cfg.group = logger_cfg.group or job.sweep_name
    logger_cfg.tags = list(logger_cfg.tags) + job.overrides
    tracker = build_tracker(logger_cfg, run_dir, OmegaConf.to_container(cfg, resolve=True),
                            accelerator.is_main_process)
    tracker.log_table("parameters", parameters, step=0)
    return tracker


def _parameter_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    trainable = sum(row["trainable"] for row in rows)
    total = sum(row["total"] for row in rows)
    return {"trainable": trainable, "total": total, "modules": rows}


def _train_and_test(cfg: DictConfig, trainer: Trainer, evaluation_cfg: Any, training_reports: list[str],
                    start: float) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if not cfg.eval_only:
        if cfg.resume:
            trainer.resume()
        summary = trainer.fit()
    trainer.scorer = build_scorer(evaluation_cfg, training_reports, bootstrap=True)
    # An evaluation-only run scores the weights it was given, not a best checkpoint left in its folder.
    test_metrics = trainer.test(load_best=not cfg.eval_only)
    return {"status": "completed", "test": test_metrics, "train": summary,
            "world_size": trainer.accelerator.num_processes, "seconds": time.perf_counter() - start,
            "peak_memory_mb": _peak_memory_all_ranks(trainer.accelerator)}


def _peak_memory_all_ranks(accelerator: Accelerator) -> float:
    """Return the largest peak memory of any rank, in MiB (a collective call)."""
    local = torch.tensor([peak_memory_mb()], dtype=torch.float64, device=accelerator.device)
    return float(accelerator.gather(local).max())


def _write_results(trainer: Trainer, tracker: Any, results: dict[str, Any]) -> None:
    if trainer.accelerator.is_main_process:
        write_metrics(trainer.run_dir / "metrics.json", results)
        tracker.log({f"final/test/{k}": v for k, v in scalar_metrics(results["test"]).items()},
                    step=trainer.state.step)
        tracker.set_summary({"best_val_score": results["train"].get("best_score"),
                             "trainable_parameters": results["parameters"]["trainable"],
                             "seconds": results["seconds"], "peak_memory_mb": results["peak_memory_mb"]})
        log.info("results written to %s", trainer.run_dir)


def selection_value(results: dict[str, Any], cfg: DictConfig) -> float | None:
    """Return the best validation selection score, or None for an evaluation-only run."""
    return results.get("train", {}).get("best_score")
