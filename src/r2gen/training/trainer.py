"""The Accelerate training loop: train, validate on the full val split, keep the best, test it.

Data parallelism, mixed precision and sharding come from Accelerate (``accelerate launch`` picks DDP,
FSDP or DeepSpeed). The distributed parts written here are the gathering of predictions
(``predict.py``), the replica check and the trainable-weight export (``distributed.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader

from r2gen.models.r2gengpt import GenerationConfig
from r2gen.training.artifacts import write_predictions
from r2gen.training.config import TrainerConfig
from r2gen.training.distributed import load_trainable_weights, replica_difference, save_trainable_weights
from r2gen.training.optim import build_optimizer, build_scheduler
from r2gen.training.predict import predict_loader, scoring_records, selection_score
from r2gen.training.state import StateStore, TrainerState, hang_if_requested, without_rng_draw
from r2gen.training.stats import Throughput, format_metrics, peak_memory_mb, scalar_metrics
from r2gen.training.train_log import TrainLog

log = logging.getLogger(__name__)

Scorer = Callable[[list[dict[str, str]]], dict[str, Any]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops instead of updating on it."""


class ReplicaMismatchError(RuntimeError):
    """DDP replicas hold different trainable weights, so the ranks would evaluate different models."""


class Trainer:
    def __init__(self, model: torch.nn.Module, loaders: dict[str, DataLoader], config: TrainerConfig,
                 generation: GenerationConfig, scorer: Scorer, run_dir: Path, accelerator: Accelerator,
                 tracker: Any) -> None:
        self.config = config
        self.generation = generation
        self.scorer = scorer
        self.run_dir = Path(run_dir)
        self.accelerator = accelerator
        self.tracker = tracker
        self.state = TrainerState(world_size=accelerator.num_processes)
        self.train_log = TrainLog(self.run_dir, accelerator.is_main_process)

        if "train" in loaders:
            self._prepare_training(model, loaders["train"])
        else:  # evaluation only
            self.model = accelerator.prepare_model(model, evaluation_mode=True)
        self.eval_loaders = {split: accelerator.prepare_data_loader(loader)
                             for split, loader in loaders.items() if split != "train"}
        self.store = StateStore(accelerator, self.run_dir, lambda: self.unwrapped)

    def _prepare_training(self, model: torch.nn.Module, train_loader: DataLoader) -> None:
        optimizer = build_optimizer(model, self.config)
        self.model, self.optimizer, self.train_loader = self.accelerator.prepare(model, optimizer, train_loader)
        # Counted on the prepared loader, so the schedule is in optimizer steps of this process count.
        self.steps_per_epoch = math.ceil(len(self.train_loader) / self.config.grad_accumulation)
        total_steps = self.config.max_steps or self.steps_per_epoch * self.config.epochs
        # The scheduler stays outside prepare(): Accelerate would step it once per process per step.
        self.scheduler = build_scheduler(self.optimizer, total_steps, self.config)
        self.accelerator.register_for_checkpointing(self.scheduler)

    # ----- checkpointing -------------------------------------------------------------------------
    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def save_state(self) -> None:
        """Save weights, optimizer, scheduler, sampler and RNG states so that ``resume`` continues here."""
        self.store.save(self.state)

    def resume(self) -> bool:
        """Load the last saved state if there is one; return whether training resumes."""
        state = self.store.load()
        if state is not None:
            self.state = state
        return state is not None

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
        """Run one micro-batch; return its loss (NaN if skipped) and the gradient norm on a sync step."""
        with self.accelerator.accumulate(self.model):
            loss = self.model(batch["pixel_values"], batch["view_counts"],
                              batch["target_ids"], batch["target_mask"])
            if not self._check_finite(loss, batch):
                self.optimizer.zero_grad(set_to_none=True)
                return float("nan"), None
            self.accelerator.backward(loss)
            grad_norm = None
            if self.accelerator.sync_gradients:
                # An infinite max_norm measures the norm without clipping.
                max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else math.inf
                # DeepSpeed clips by its own config (gradient_clipping) and may return no norm here.
                norm = self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm)
                grad_norm = None if norm is None else float(norm)
            self.optimizer.step()
            if self.accelerator.sync_gradients and not self.optimizer.step_was_skipped:
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
            loader = without_rng_draw(self.accelerator.skip_first_batches(loader, self.state.batches_in_epoch))
        epoch_losses: list[float] = []
        pending: list[float] = []  # micro-batch losses of the current optimizer step
        local = torch.zeros(2, dtype=torch.float64)  # samples and target tokens since the last step
        throughput = Throughput()
        for batch in loader:
            lr = self.optimizer.param_groups[0]["lr"]
            loss, grad_norm = self._train_step(batch)
            self.state.batches_in_epoch += 1
            if math.isfinite(loss):
                pending.append(loss)
            local += torch.tensor([len(batch["ids"]), int(batch["target_mask"].sum())], dtype=torch.float64)
            if not self.accelerator.sync_gradients:
                continue
            self.state.step += 1
            step_loss, samples, tokens = self._reduce_step(pending, local)
            throughput.add(samples, tokens)
            if math.isfinite(step_loss):
                epoch_losses.append(step_loss)
            self._log_step(step_loss, lr, grad_norm, throughput)
            pending, local = [], torch.zeros(2, dtype=torch.float64)
            if self.config.save_every_steps and self.state.step % self.config.save_every_steps == 0:
                self.save_state()
            hang_if_requested(self.state.step)
            if self._done():
                break
        return {"train_loss": sum(epoch_losses) / max(1, len(epoch_losses)),
                "train_samples_per_s": throughput.rates()["samples_per_s"],
                "train_tokens_per_s": throughput.rates()["tokens_per_s"], "train_seconds": throughput.seconds}

    def _reduce_step(self, losses: list[float], local: torch.Tensor) -> tuple[float, int, int]:
        """Return the step's mean loss over every rank's micro-batches, and the samples and tokens of all ranks."""
        values = torch.cat([torch.tensor([sum(losses), len(losses)], dtype=torch.float64), local])
        total = self.accelerator.reduce(values.to(self.accelerator.device), reduction="sum").cpu()
        loss = float(total[0] / total[1]) if total[1] > 0 else float("nan")
        return loss, int(total[2]), int(total[3])

    def _log_step(self, loss: float, lr: float, grad_norm: float | None, throughput: Throughput) -> None:
        rates = throughput.rates()
        row = {"step": self.state.step, "epoch": self.state.epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
               **rates}
        self.train_log.append(row)
        if self.state.step % self.config.log_every_steps and not self._done():
            return
        metrics = {"train/loss": loss, "train/lr": lr, "train/epoch": self.state.epoch,
                   "train/samples_per_s": rates["samples_per_s"], "train/tokens_per_s": rates["tokens_per_s"],
                   "train/peak_memory_mb": peak_memory_mb()}
        if grad_norm is not None:
            metrics["train/grad_norm"] = grad_norm
        log.info("epoch %d step %d loss %.4f lr %.2e grad_norm %s %.2f samples/s %.0f tokens/s",
                 self.state.epoch + 1, self.state.step, loss, lr, "-" if grad_norm is None else f"{grad_norm:.3f}",
                 rates["samples_per_s"], rates["tokens_per_s"])
        self.tracker.log(metrics, step=self.state.step)

    # ----- evaluation ----------------------------------------------------------------------------
    def evaluate(self, split: str, tag: str) -> dict[str, Any]:
        """Generate for the whole split on all ranks, gather, score once on the main process, write the files.

        Returns the metrics on the main process and an empty dict on the others.
        """
        records = predict_loader(self.accelerator, self.unwrapped, self.eval_loaders[split], self.generation)
        if not self.accelerator.is_main_process:
            return {}
        metrics = self.scorer(scoring_records(records))
        metrics["num_samples"] = len(records)
        metrics["empty_generations"] = sum(1 for row in records if not row["hypothesis"])
        if metrics["empty_generations"]:
            log.warning("%s: %d of %d generations are empty (kept, scored as empty strings)",
                        tag, metrics["empty_generations"], len(records))
        write_predictions(self.run_dir / "predictions" / f"{tag}.jsonl", [r["id"] for r in records],
                          [r["reference"] for r in records], [r["hypothesis"] for r in records])
        self.tracker.log({f"{split}/{k}": v for k, v in metrics.items()}, step=self.state.step)
        self.tracker.log_samples(f"{split}/samples", records, step=self.state.step)
        log.info("%s metrics: %s", tag, format_metrics(metrics))
        return metrics

    def check_replicas(self) -> float | None:
        """Raise ``ReplicaMismatchError`` unless every DDP rank has the same trainable weights."""
        difference = replica_difference(self.accelerator, self.model)
        if difference is not None and difference > 0.0:
            raise ReplicaMismatchError(
                f"trainable weights differ between ranks at step {self.state.step} (largest checksum difference "
                f"{difference:.3g}); every rank must build the model with the same seed and tuning config")
        return difference

    def _validate_and_select(self) -> None:
        self.check_replicas()
        metrics = self.evaluate("val", f"val_epoch{self.state.epoch}")
        improved = [False]
        if self.accelerator.is_main_process:
            score = selection_score(metrics, self.config.selection)
            improved[0] = self.state.best_score is None or score > self.state.best_score
            self.state.history.append({"epoch": self.state.epoch, "step": self.state.step,
                                       "score": score, **scalar_metrics(metrics)})
            self.tracker.log({"val/selection_score": score}, step=self.state.step)
            if improved[0]:
                self.state.best_score, self.state.best_epoch = score, self.state.epoch
        # Every rank takes part in saving (FSDP and DeepSpeed gather the weights collectively).
        broadcast_object_list(improved)
        if improved[0]:
            save_trainable_weights(self.accelerator, self.model, self.best_path,
                                   {"epoch": self.state.epoch, "step": self.state.step,
                                    "score": self.state.best_score})
            log.info("new best checkpoint: score %.4f at epoch %d", self.state.best_score or 0.0, self.state.epoch)
        self.accelerator.wait_for_everyone()

    @property
    def best_path(self) -> Path:
        return self.run_dir / "checkpoints" / "best.safetensors"

    # ----- the whole run -------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for ``epochs`` (or ``max_steps``), validating every ``eval_every_epochs``."""
        self.train_log.truncate_after(self.state.step)
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
                "replica_max_difference": self.check_replicas(), "history": self.state.history}

    def test(self, load_best: bool = True) -> dict[str, Any]:
        """Score the test split, after loading the run's best checkpoint if ``load_best`` and it exists."""
        if load_best and self.best_path.is_file():
            load_trainable_weights(self.accelerator, self.model, self.best_path)
            log.info("testing the best checkpoint %s (epoch %s)", self.best_path, self.state.best_epoch)
        return self.evaluate("test", "test")


__all__ = ["Trainer", "TrainerState", "NonFiniteLossError", "ReplicaMismatchError"]
