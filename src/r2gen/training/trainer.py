"""The Accelerate training loop: train, validate on the full val split, keep the best, test it.

Distributed data parallelism, mixed precision and sharding all come from Accelerate; this file
contains no distributed code of its own beyond gathering predictions for scoring.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from r2gen.models.r2gengpt import GenerationConfig
from r2gen.training.checkpoint import load_trainable, save_trainable, trainable_state_dict
from r2gen.training.config import TrainerConfig
from r2gen.training.io import replace_directory, write_json_atomic
from r2gen.training.optim import build_optimizer, build_scheduler
from r2gen.training.predict import predict_loader, selection_score
from r2gen.training.artifacts import write_metrics, write_predictions

log = logging.getLogger(__name__)

Scorer = Callable[[list[dict[str, str]]], dict[str, Any]]


@dataclass
class TrainerState:
    """Progress that a resumed run continues from (stored as JSON beside the Accelerate state)."""

    epoch: int = 0  # epochs fully completed
    step: int = 0  # optimizer steps done
    batches_in_epoch: int = 0  # batches of the current epoch already trained
    best_score: float | None = None
    best_epoch: int | None = None
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops instead of updating on it."""


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        loaders: dict[str, DataLoader],
        config: TrainerConfig,
        generation: GenerationConfig,
        scorer: Scorer,
        run_dir: Path,
        accelerator: Accelerator,
        tracker: Any,
    ) -> None:
        self.config = config
        self.generation = generation
        self.scorer = scorer
        self.run_dir = Path(run_dir)
        self.accelerator = accelerator
        self.tracker = tracker
        self.state = TrainerState()

        optimizer = build_optimizer(model, config)
        self.steps_per_epoch = math.ceil(len(loaders["train"]) / config.grad_accumulation)
        total = config.max_steps or self.steps_per_epoch * config.epochs
        scheduler = build_scheduler(optimizer, total, config)
        self.model, self.optimizer, self.train_loader, self.scheduler = accelerator.prepare(
            model, optimizer, loaders["train"], scheduler)
        self.eval_loaders = {split: accelerator.prepare_data_loader(loader)
                             for split, loader in loaders.items() if split != "train"}
        accelerator.register_save_state_pre_hook(self._save_trainable_only)
        accelerator.register_load_state_pre_hook(self._load_trainable_only)

    # ----- checkpointing -------------------------------------------------------------------------
    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def _save_trainable_only(self, models: list, weights: list, output_dir: str) -> None:
        # Accelerate would save the full model (a 7B LLM included); keep only what trains.
        weights.clear()
        if self.accelerator.is_main_process:
            save_trainable(self.unwrapped, Path(output_dir) / "trainable.safetensors")

    def _load_trainable_only(self, models: list, input_dir: str) -> None:
        models.clear()
        load_trainable(self.unwrapped, Path(input_dir) / "trainable.safetensors")

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "checkpoints" / "last"

    def save_state(self) -> None:
        """Save weights, optimizer, scheduler, sampler and RNG states so that ``resume`` continues here.

        Everything goes to a temporary folder first, which then replaces ``last`` in one rename, so a
        run killed while saving still has its previous complete state.
        """
        tmp_dir = self.state_dir.with_name("last.tmp")
        self.accelerator.save_state(str(tmp_dir))
        if self.accelerator.is_main_process:
            write_json_atomic(tmp_dir / "trainer_state.json", self.state.__dict__)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            replace_directory(tmp_dir, self.state_dir)
        self.accelerator.wait_for_everyone()

    def resume(self) -> bool:
        """Load the last saved state if there is one; return whether training resumes."""
        state_file = self.state_dir / "trainer_state.json"
        if not state_file.is_file():
            log.warning("resume=true but %s does not exist; starting from scratch", state_file)
            return False
        self.accelerator.load_state(str(self.state_dir))
        self.state = TrainerState(**json.loads(state_file.read_text()))
        log.info("resumed from %s: epoch %d, step %d, best score %s",
                 self.state_dir, self.state.epoch, self.state.step, self.state.best_score)
        return True

    # ----- training ------------------------------------------------------------------------------
    def _check_finite(self, loss: torch.Tensor, batch: dict[str, Any]) -> bool:
        finite = torch.isfinite(loss.detach()).float()
        all_finite = bool(self.accelerator.reduce(finite, reduction="min").item())
        if all_finite:
            return True
        message = (f"non-finite loss {loss.item()} at epoch {self.state.epoch + 1}, step {self.state.step}, "
                   f"batch ids {batch['ids']}")
        if self.config.nonfinite_loss == "skip":
            self.state.skipped_steps += 1
            log.warning("%s; skipping the step (%d skipped so far)", message, self.state.skipped_steps)
            return False
        raise NonFiniteLossError(message + ". Lower trainer.lr, use trainer.precision=fp32, or set "
                                 "trainer.nonfinite_loss=skip to skip such steps.")

    def _train_step(self, batch: dict[str, Any]) -> tuple[float, float | None]:
        with self.accelerator.accumulate(self.model):
            loss = self.model(batch["pixel_values"], batch["view_counts"],
                              batch["target_ids"], batch["target_mask"])
            if not self._check_finite(loss, batch):
                self.optimizer.zero_grad(set_to_none=True)
                return float("nan"), None
            self.accelerator.backward(loss)
            grad_norm = None
            if self.accelerator.sync_gradients and self.config.max_grad_norm is not None:
                grad_norm = float(self.accelerator.clip_grad_norm_(
                    self.model.parameters(), self.config.max_grad_norm))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss.item(), grad_norm

    def _done(self) -> bool:
        return self.config.max_steps is not None and self.state.step >= self.config.max_steps

    def train_epoch(self) -> dict[str, float]:
        """Train one epoch (or what is left of it after a resume) and return its statistics."""
        self.model.train()
        self.train_loader.set_epoch(self.state.epoch)
        loader = self.train_loader
        if self.state.batches_in_epoch:
            loader = self.accelerator.skip_first_batches(loader, self.state.batches_in_epoch)
        losses, samples, tokens, start = [], 0, 0, time.perf_counter()
        for batch in loader:
            loss, grad_norm = self._train_step(batch)
            self.state.batches_in_epoch += 1
            if self.accelerator.sync_gradients:
                self.state.step += 1
            if math.isfinite(loss):
                losses.append(loss)
            samples += len(batch["ids"]) * self.accelerator.num_processes
            tokens += int(batch["target_mask"].sum()) * self.accelerator.num_processes
            self._log_step(loss, grad_norm, samples, tokens, start)
            if self.config.save_every_steps and self.state.step % self.config.save_every_steps == 0:
                self.save_state()
            if self._done():
                break
        elapsed = time.perf_counter() - start
        return {"train_loss": sum(losses) / max(1, len(losses)), "train_samples_per_s": samples / elapsed,
                "train_tokens_per_s": tokens / elapsed, "train_seconds": elapsed}

    def _log_step(self, loss: float, grad_norm: float | None, samples: int, tokens: int, start: float) -> None:
        if self.state.step % self.config.log_every_steps and not self._done():
            return
        if not self.accelerator.sync_gradients:
            return
        elapsed = max(time.perf_counter() - start, 1e-9)
        metrics = {"train/loss": loss, "train/lr": self.scheduler.get_last_lr()[0],
                   "train/samples_per_s": samples / elapsed, "train/tokens_per_s": tokens / elapsed,
                   "train/peak_memory_mb": peak_memory_mb()}
        if grad_norm is not None:
            metrics["train/grad_norm"] = grad_norm
        log.info("epoch %d step %d loss %.4f lr %.2e grad_norm %s %.2f samples/s",
                 self.state.epoch + 1, self.state.step, loss, metrics["train/lr"],
                 "-" if grad_norm is None else f"{grad_norm:.3f}", metrics["train/samples_per_s"])
        self.tracker.log(metrics, step=self.state.step)

    # ----- evaluation ----------------------------------------------------------------------------
    def evaluate(self, split: str, tag: str) -> dict[str, Any]:
        """Generate for the whole split on all processes, gather, score once, and write the files."""
        records = predict_loader(self.accelerator, self.unwrapped, self.eval_loaders[split], self.generation)
        if not self.accelerator.is_main_process:
            return {}
        metrics = self.scorer(records)
        metrics["num_samples"] = len(records)
        metrics["empty_generations"] = sum(1 for row in records if not row["hypothesis"])
        if metrics["empty_generations"]:
            log.warning("%s: %d of %d generations are empty (kept, scored as empty strings)",
                        tag, metrics["empty_generations"], len(records))
        write_predictions(self.run_dir / "predictions" / f"{tag}.jsonl", [r["id"] for r in records],
                          [r["reference"] for r in records], [r["hypothesis"] for r in records])
        self.tracker.log({f"{split}/{k}": v for k, v in metrics.items()}, step=self.state.step)
        self.tracker.log_samples(records[: 8], step=self.state.step)
        log.info("%s metrics: %s", tag, format_metrics(metrics))
        return metrics

    def _validate_and_select(self) -> None:
        metrics = self.evaluate("val", f"val_epoch{self.state.epoch}")
        improved = False
        if self.accelerator.is_main_process:
            score = selection_score(metrics, self.config.selection)
            improved = self.state.best_score is None or score > self.state.best_score
            self.state.history.append({"epoch": self.state.epoch, "step": self.state.step,
                                       "score": score, **scalar_metrics(metrics)})
            if improved:
                self.state.best_score, self.state.best_epoch = score, self.state.epoch
                save_trainable(self.unwrapped, self.run_dir / "checkpoints" / "best.safetensors",
                               {"epoch": self.state.epoch, "step": self.state.step, "score": score})
                log.info("new best checkpoint: score %.4f at epoch %d", score, self.state.epoch)
        self.accelerator.wait_for_everyone()

    # ----- the whole run -------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for ``epochs`` (or ``max_steps``), validating every ``eval_every_epochs``."""
        if self.config.eval_on_start and self.state.step == 0:
            self._validate_and_select()
        while self.state.epoch < self.config.epochs and not self._done():
            stats = self.train_epoch()
            self.state.epoch += 1
            self.state.batches_in_epoch = 0
            log.info("epoch %d done: %s", self.state.epoch, format_metrics(stats))
            self.tracker.log({f"epoch/{k}": v for k, v in stats.items()}, step=self.state.step)
            last = self.state.epoch == self.config.epochs or self._done()
            if self.state.epoch % self.config.eval_every_epochs == 0 or last:
                self._validate_and_select()
            self.save_state()
        return {"best_score": self.state.best_score, "best_epoch": self.state.best_epoch,
                "steps": self.state.step, "skipped_steps": self.state.skipped_steps,
                "history": self.state.history}

    def test(self) -> dict[str, Any]:
        """Load the best checkpoint (if training produced one) and score the test split."""
        best = self.run_dir / "checkpoints" / "best.safetensors"
        if best.is_file():
            load_trainable(self.unwrapped, best)
            log.info("testing the best checkpoint %s (epoch %s)", best, self.state.best_epoch)
        return self.evaluate("test", "test")


def peak_memory_mb() -> float:
    """Peak GPU memory if on CUDA, else the peak resident set size of this process, in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in scalar_metrics(metrics).items():
        parts.append(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


__all__ = ["Trainer", "TrainerState", "NonFiniteLossError", "trainable_state_dict", "write_metrics"]
