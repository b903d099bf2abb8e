"""Dataclasses that Hydra instantiates from the `trainer`, `data` and `logger` config groups.

Building them with ``_target_`` makes an unknown or misspelt key fail at start-up with a TypeError
that names it, instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainerConfig:
    """Optimisation, evaluation and checkpointing settings of one run."""

    epochs: int = 15
    max_steps: int | None = None  # stop after this many optimizer steps (smoke tests); None = all epochs
    batch_size: int = 8  # per process
    eval_batch_size: int = 8  # per process
    grad_accumulation: int = 1
    max_grad_norm: float | None = 1.0  # None disables clipping
    lr: float = 1e-4
    min_lr: float = 1e-6  # floor of the cosine schedule
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine" or "constant"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast; the frozen LLM may also be stored in bf16)
    seed: int = 42
    eval_every_epochs: int = 1
    eval_on_start: bool = False
    eval_max_samples: int | None = None  # cap the validation split (smoke tests); None = full split
    selection: dict[str, float] = field(default_factory=lambda: {"BLEU_4": 0.5, "CIDEr": 0.5})
    nonfinite_loss: str = "error"  # "error" stops the run; "skip" drops the step and counts it
    num_workers: int = 0
    log_every_steps: int = 10
    save_every_steps: int | None = None  # also save resumable state mid-epoch
    gradient_checkpointing_llm: bool = False
    gradient_checkpointing_encoder: bool = False
    torch_threads: int | None = None  # None keeps torch's default


@dataclass
class DataConfig:
    """One dataset in R2Gen layout plus the text lengths and decoding limits that go with it."""

    name: str
    root: str
    annotation: str = "annotation.json"
    image_dir: str = "images"
    cleaning: str = "mimic_cxr"  # "iu_xray", "mimic_cxr" or "none"
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    max_target_tokens: int = 100
    min_new_tokens: int = 80
    max_new_tokens: int = 120
    on_invalid: str = "error"  # "error" or "skip"
    decode_check: bool = True  # decode every image at start-up
    cache: bool = False  # decoded-image cache (Arrow, memory-mapped)
    image_ablation: str | None = None  # "blank" or "shuffled" images, to test whether a model uses them

    @property
    def annotation_path(self) -> Path:
        return Path(self.root) / self.annotation

    @property
    def image_root(self) -> Path:
        return Path(self.root) / self.image_dir


@dataclass
class LoggerConfig:
    """Experiment tracking. ``backend`` "wandb" or "none"; W&B runs offline unless ``mode`` is "online"."""

    backend: str = "none"
    project: str = "r2gen"
    mode: str = "offline"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    log_samples: int = 8  # rows in the table of sample generations
