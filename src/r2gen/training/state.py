"""Resumable training state in ``<run dir>/checkpoints/last``, and what resuming needs to be exact.

Accelerate saves the optimizer, the registered scheduler, the sampler state and every rank's RNG
states; ``TrainerState`` adds the loop position as JSON. With DDP or one process only the trainable
weights are saved (through Accelerate's save and load hooks); FSDP and DeepSpeed save their own
sharded model state.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from r2gen.training.checkpoint import load_trainable, save_trainable
from r2gen.training.distributed import is_sharded
from r2gen.training.io import replace_directory, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
TRAINABLE_FILE = "trainable.safetensors"

# Test hook: after this optimizer step the process logs, then sleeps until it is killed, so a test
# can SIGKILL a real run at a known point between two saved states.
HANG_AFTER_STEP_ENV = "R2GEN_TEST_HANG_AFTER_STEP"


@dataclass
class TrainerState:
    """Progress that a resumed run continues from (stored as JSON beside the Accelerate state)."""

    epoch: int = 0  # epochs fully completed
    step: int = 0  # optimizer steps done
    batches_in_epoch: int = 0  # batches of the current epoch already trained, on each rank
    best_score: float | None = None
    best_epoch: int | None = None
    skipped_steps: int = 0
    world_size: int = 1  # processes that trained; batches_in_epoch only means the same at this count
    history: list[dict[str, Any]] = field(default_factory=list)


class StateStore:
    """Saves and loads the resumable state of one run directory."""

    def __init__(self, accelerator: Accelerator, run_dir: Path, model: Callable[[], torch.nn.Module]) -> None:
        self.accelerator = accelerator
        self.state_dir = Path(run_dir) / "checkpoints" / "last"
        self._model = model  # returns the unwrapped model
        if not is_sharded(accelerator):
            accelerator.register_save_state_pre_hook(self._save_trainable_only)
            accelerator.register_load_state_pre_hook(self._load_trainable_only)

    def _save_trainable_only(self, models: list, weights: list, output_dir: str) -> None:
        # Accelerate would save the full model (a 7B LLM included); keep only what trains.
        weights.clear()
        if self.accelerator.is_main_process:
            save_trainable(self._model(), Path(output_dir) / TRAINABLE_FILE)

    def _load_trainable_only(self, models: list, input_dir: str) -> None:
        models.clear()
        load_trainable(self._model(), Path(input_dir) / TRAINABLE_FILE)

    def save(self, state: TrainerState) -> None:
        """Save everything to ``last.tmp``, then swap it in for ``last``.

        A run killed while saving still has its previous complete state.
        """
        tmp_dir = self.state_dir.with_name("last.tmp")
        self.accelerator.save_state(str(tmp_dir))
        if self.accelerator.is_main_process:
            write_json_atomic(tmp_dir / STATE_FILE, state.__dict__)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            replace_directory(tmp_dir, self.state_dir)
        self.accelerator.wait_for_everyone()
        log.info("saved resumable state at step %d to %s", state.step, self.state_dir)

    def load(self) -> TrainerState | None:
        """Load the saved state into the prepared objects and return it; None if nothing was saved."""
        state_file = self.state_dir / STATE_FILE
        if not state_file.is_file():
            log.warning("resume=true but %s does not exist; starting from scratch", state_file)
            return None
        state = TrainerState(**json.loads(state_file.read_text()))
        if state.world_size != self.accelerator.num_processes:
            raise ValueError(
                f"{self.state_dir} was saved by {state.world_size} process(es) but this run has "
                f"{self.accelerator.num_processes}; resume with --num_processes {state.world_size}, or start a "
                "new run from its weights with checkpoint=<run dir>/checkpoints/last/trainable.safetensors")
        self.accelerator.load_state(str(self.state_dir))
        log.info("resumed from %s: epoch %d, step %d, best score %s",
                 self.state_dir, state.epoch, state.step, state.best_score)
        return state


def without_rng_draw(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """Yield the loader's batches, undoing the global RNG draw that starting its iterator makes.

    A PyTorch DataLoader draws a base seed from the global RNG when an iterator starts. The
    uninterrupted run made that draw at the start of the epoch, before the state a resumed run
    loads, so the resumed run must not draw again or its dropout masks shift by one draw.
    """
    rng_state = torch.random.get_rng_state()
    iterator = iter(loader)
    first = next(iterator, None)
    torch.random.set_rng_state(rng_state)
    if first is None:
        return
    yield first
    yield from iterator


def hang_if_requested(step: int) -> None:
    """Sleep forever after optimizer step ``$R2GEN_TEST_HANG_AFTER_STEP``, waiting for a test's SIGKILL."""
    target = os.environ.get(HANG_AFTER_STEP_ENV)
    if target is None or step != int(target):
        return
    log.warning("%s=%s: step %d is done; sleeping until this process is killed", HANG_AFTER_STEP_ENV, target, step)
    while True:
        time.sleep(1)
