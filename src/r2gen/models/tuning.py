"""Trainability of the encoder, aligner and LLM: freezing, LoRA and gradient checkpointing.

A ``TuningConfig`` declares one mode per module, and ``apply_tuning`` applies it to a model whose
children are ``encoder``, ``aligner`` and ``llm``. R2GenGPT's three settings keep the LLM frozen
and train the aligner: shallow (encoder frozen), delta (LoRA on the encoder's query and value
projections) and deep (encoder fully trained).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

logger = logging.getLogger(__name__)

MODULE_NAMES = ("encoder", "aligner", "llm")
_ALLOWED_MODES = {
    "encoder": ("frozen", "lora", "full"),
    "aligner": ("frozen", "full"),
    "llm": ("frozen", "lora"),
}


@dataclass
class LoraSettings:
    """LoRA hyperparameters. ``target_modules=None`` means the module's own default targets."""

    rank: int = 16
    alpha: float = 16
    dropout: float = 0.1
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"invalid LoRA rank {self.rank}: it must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid LoRA dropout {self.dropout}: it must be in [0, 1)")
        if self.target_modules is not None:
            self.target_modules = [str(name) for name in self.target_modules]
            if not self.target_modules:
                raise ValueError("LoRA target_modules is empty: list module names or use null for the defaults")


def _default_llm_lora() -> LoraSettings:
    return LoraSettings(target_modules=["q_proj", "v_proj"])


@dataclass
class TuningConfig:
    """Trainability per module: encoder frozen/lora/full, aligner frozen/full, LLM frozen/lora."""

    encoder: str = "frozen"
    aligner: str = "full"
    llm: str = "frozen"
    lora: LoraSettings = field(default_factory=LoraSettings)
    llm_lora: LoraSettings = field(default_factory=_default_llm_lora)

    def __post_init__(self) -> None:
        for module, allowed in _ALLOWED_MODES.items():
            mode = getattr(self, module)
            if mode not in allowed:
                raise ValueError(f"invalid tuning.{module}={mode!r}: use one of {list(allowed)}")
        # Hydra passes nested groups without a _target_ as mappings, and unknown keys raise TypeError here.
        if isinstance(self.lora, Mapping):
            self.lora = LoraSettings(**self.lora)
        if isinstance(self.llm_lora, Mapping):
            self.llm_lora = LoraSettings(**self.llm_lora)


def apply_tuning(model: nn.Module, config: TuningConfig) -> None:
    """Freeze, unfreeze and add LoRA adapters on ``model.encoder``, ``model.aligner`` and ``model.llm``.

    Adapters are injected in place with ``peft.inject_adapter_in_model``, so the modules keep their
    class and forward, and state-dict keys only gain ``.base_layer`` and ``.lora_A/B.default`` parts.
    """
    _check_children(model)
    if any(isinstance(module, BaseTunerLayer) for module in model.modules()):
        raise RuntimeError("apply_tuning was already applied to this model: LoRA layers are present")

    encoder = model.get_submodule("encoder")
    encoder.requires_grad_(config.encoder == "full")
    if config.encoder == "lora":
        default_targets = getattr(encoder, "lora_target_modules", None)
        _inject_lora(encoder, config.lora, default_targets, "encoder")

    model.get_submodule("aligner").requires_grad_(config.aligner == "full")

    llm = model.get_submodule("llm")
    llm.requires_grad_(False)
    if config.llm == "lora":
        _inject_lora(llm, config.llm_lora, ["q_proj", "v_proj"], "llm")

    logger.info("Applied tuning: encoder=%s aligner=%s llm=%s", config.encoder, config.aligner, config.llm)


def _check_children(model: nn.Module) -> None:
    children = dict(model.named_children())
    missing = [name for name in MODULE_NAMES if name not in children]
    if missing:
        raise ValueError(
            f"{type(model).__name__} has no child module(s) {missing}: apply_tuning needs "
            f"children named {list(MODULE_NAMES)}"
        )


def _inject_lora(
    module: nn.Module, settings: LoraSettings, default_targets: list[str] | None, name: str
) -> None:
    targets = settings.target_modules or default_targets
    if not targets:
        raise ValueError(f"no LoRA target modules for the {name}: set its target_modules")
    lora_config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        bias="none",
    )
    inject_adapter_in_model(lora_config, module)
    # Only the adapter weights train. PEFT already marks them so, and this makes the contract explicit.
    for parameter_name, parameter in module.named_parameters():
        parameter.requires_grad_("lora_" in parameter_name)
    adapted = sum(isinstance(layer, BaseTunerLayer) for layer in module.modules())
    logger.info("Added LoRA (rank %d) to %d %s layers matching %s", settings.rank, adapted, name, targets)


def frozen_modules(model: nn.Module) -> list[str]:
    """List the submodules to keep in eval mode while ``model`` trains.

    These are the top-level children with no trainable parameter and, inside partly trainable
    children, every frozen batch-norm layer, whose running statistics would otherwise drift. A frozen
    child with gradient checkpointing on is left out because transformers only checkpoints in training
    mode, so call this after ``enable_gradient_checkpointing``.
    """
    names: list[str] = []
    for child_name, child in model.named_children():
        trainable = any(parameter.requires_grad for parameter in child.parameters())
        if not trainable:
            if _uses_gradient_checkpointing(child):
                logger.debug("Keeping frozen %s in training mode for gradient checkpointing", child_name)
            else:
                names.append(child_name)
            continue
        for module_name, module in child.named_modules():
            frozen = not any(parameter.requires_grad for parameter in module.parameters())
            if isinstance(module, _BatchNorm) and frozen:
                names.append(f"{child_name}.{module_name}")
    return names


def set_frozen_eval(model: nn.Module) -> None:
    """Put every module from ``frozen_modules`` in eval mode. Call it after ``model.train()``."""
    for name in frozen_modules(model):
        model.get_submodule(name).eval()


def _uses_gradient_checkpointing(module: nn.Module) -> bool:
    # transformers layers carry `gradient_checkpointing`, timm models `grad_checkpointing`.
    return any(
        getattr(sub, "gradient_checkpointing", False) is True or getattr(sub, "grad_checkpointing", False) is True
        for sub in module.modules()
    )


def enable_gradient_checkpointing(model: nn.Module, llm: bool, encoder: bool) -> None:
    """Turn on non-reentrant gradient checkpointing in the LLM and/or the encoder.

    Call it after ``apply_tuning``: a frozen encoder is skipped because no gradient flows through it.
    """
    if llm:
        # transformers 5 renamed gradient_checkpointing_enable to activation_checkpointing_enable.
        model.get_submodule("llm").activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        logger.info("Enabled gradient checkpointing in the LLM")
    if not encoder:
        return
    vision = model.get_submodule("encoder")
    if not any(parameter.requires_grad for parameter in vision.parameters()):
        logger.info("Encoder is frozen, so gradient checkpointing stays off there")
    elif not getattr(vision, "supports_gradient_checkpointing", False):
        logger.warning("%s does not support gradient checkpointing, so it stays off", type(vision).__name__)
    else:
        vision.gradient_checkpointing_enable()
        logger.info("Enabled gradient checkpointing in the encoder")


def parameter_table(model: nn.Module) -> list[dict]:
    """Count parameters per top-level child: rows of ``module``, ``trainable``, ``total`` and ``mode``.

    ``mode`` is frozen, full, lora (only LoRA weights train) or partial (any other mix).
    """
    rows = []
    for name, child in model.named_children():
        total = trainable = lora_trainable = 0
        for parameter_name, parameter in child.named_parameters():
            total += parameter.numel()
            if parameter.requires_grad:
                trainable += parameter.numel()
                lora_trainable += parameter.numel() if "lora_" in parameter_name else 0
        mode = _mode(trainable, total, lora_trainable)
        rows.append({"module": name, "trainable": trainable, "total": total, "mode": mode})
    return rows


def _mode(trainable: int, total: int, lora_trainable: int) -> str:
    if trainable == 0:
        return "frozen"
    if trainable == total:
        return "full"
    return "lora" if lora_trainable == trainable else "partial"


def format_parameter_table(rows: list[dict]) -> str:
    """Render ``parameter_table`` rows, plus a total line, as an aligned text table."""
    lines = [f"{'module':<10} {'mode':<8} {'trainable':>15} {'total':>15} {'trainable %':>12}"]
    for row in rows + [_total_row(rows)]:
        share = 100.0 * row["trainable"] / row["total"] if row["total"] else 0.0
        lines.append(
            f"{row['module']:<10} {row['mode']:<8} {row['trainable']:>15,} {row['total']:>15,} {share:>11.3f}%"
        )
    return "\n".join(lines)


def _total_row(rows: list[dict]) -> dict:
    return {
        "module": "total",
        "mode": "",
        "trainable": sum(row["trainable"] for row in rows),
        "total": sum(row["total"] for row in rows),
    }
