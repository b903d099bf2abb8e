"""AdamW over trainable parameters and a per-step cosine schedule with optional linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from r2gen.training.config import TrainerConfig


def build_optimizer(model: nn.Module, config: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW over the parameters that require gradients only (R2GenGPT passes all of them)."""
    params = [param for param in model.parameters() if param.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; check the tuning config")
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(step: int, total_steps: int, config: TrainerConfig) -> float:
    """Multiplier of ``config.lr`` at optimizer step ``step``.

    Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` over the remaining steps. R2GenGPT
    steps its cosine once per epoch; stepping per optimizer step gives the same curve, only smoother.
    """
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    if config.schedule != "cosine":
        raise ValueError(f"unknown schedule {config.schedule!r}; expected 'cosine' or 'constant'")
    decay_steps = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    floor = config.min_lr / config.lr
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, config: TrainerConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, config))
