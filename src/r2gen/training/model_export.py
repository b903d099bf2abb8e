"""Export a trained run as a model folder that ``r2gen.predict`` loads without the run directory.

The folder contains:
- ``config.yaml``: the model part of the run's config (encoder, aligner, llm, tuning, model,
  generation and the training precision), without the dataset or training settings;
- ``trainable.safetensors``: the trainable weights, loaded with strict key checks;
- ``r2gen_model.json``: format version, where the weights came from, and a fingerprint of the
  tokenizer (vocabulary size, special ids, vocabulary hash) that is checked when the folder loads.

The frozen pretrained encoder and LLM are not copied: the config refers to them by ``encoder.path``
and ``llm.path``. With ``merge_lora`` the encoder's LoRA adapters are folded into its weights, the
whole encoder is stored, and the exported config sets ``tuning.encoder: full``. The model then loads
without LoRA layers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

import r2gen
from r2gen.training.build import build_model
from r2gen.training.checkpoint import load_trainable, read_checkpoint_metadata, save_trainable
from r2gen.training.inference import (CONFIG_FILE, EXPORT_CHECKPOINT, EXPORT_MANIFEST, ModelSourceError,
                                      locate_model, tokenizer_fingerprint)
from r2gen.training.io import replace_directory, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

EXPORT_FORMAT_VERSION = 1
MODEL_CONFIG_KEYS = ("encoder", "aligner", "llm", "tuning", "model", "generation")


def merge_lora_layers(module: nn.Module) -> int:
    """Fold every LoRA adapter under ``module`` into its base layer and put the base layer back in its place.

    Returns the number of merged layers. The result has the same outputs (up to float rounding)
    and the state-dict keys of the module before LoRA was added.
    """
    names = [name for name, child in module.named_modules() if isinstance(child, BaseTunerLayer)]
    for name in names:
        layer = module.get_submodule(name)
        layer.merge(safe_merge=True)
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, layer.get_base_layer())
    return len(names)


def export_config(config: DictConfig, merged: bool) -> DictConfig:
    """Return the model part of a run's config; ``merged`` switches the encoder's tuning to full."""
    exported = OmegaConf.create({key: config[key] for key in MODEL_CONFIG_KEYS})
    precision = OmegaConf.select(config, "trainer.precision", default="fp32")
    exported.trainer = {"precision": precision}
    if merged:
        exported.tuning.encoder = "full"
    return exported


def export_model(run_dir: Path, output_dir: Path, checkpoint: Path | None = None, merge_lora: bool = False,
                 overwrite: bool = False) -> Path:
    """Write the exported folder for ``run_dir`` to ``output_dir`` and return ``output_dir``.

    The folder is written under a temporary name next to ``output_dir`` and renamed at the end. An
    existing ``output_dir`` is replaced only with ``overwrite``.
    """
    output_dir = Path(output_dir).expanduser()
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} already exists; fix: choose another folder or pass --overwrite")
    source = locate_model(run_dir, checkpoint)
    if source.kind != "run":
        raise ModelSourceError(f"{source.path} is already an exported model folder; export a run directory")

    model = build_model(source.config)
    load_trainable(model, source.checkpoint)
    merged = _merge_encoder_lora(model, source.config) if merge_lora else 0

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        config = export_config(source.config, merged=merged > 0)
        write_text_atomic(staging / CONFIG_FILE, OmegaConf.to_yaml(config))
        save_trainable(model, staging / EXPORT_CHECKPOINT, {"source_checkpoint": str(source.checkpoint)})
        write_json_atomic(staging / EXPORT_MANIFEST, _manifest(source.path, source.checkpoint, model, merged))
        _apply_umask(staging)
        replace_directory(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %s to %s (%d LoRA layers merged)", source.path, output_dir, merged)
    return output_dir


def _apply_umask(folder: Path) -> None:
    """Give the folder and its files the modes that mkdir and open would, so other users can read them.

    mkdtemp and mkstemp (used for the atomic writes) create them as 0700 and 0600.
    """
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _merge_encoder_lora(model: nn.Module, config: DictConfig) -> int:
    if config.tuning.encoder != "lora":
        log.warning("merge_lora requested, but tuning.encoder is %r, so there is nothing to merge",
                    config.tuning.encoder)
        return 0
    encoder = model.get_submodule("encoder")
    merged = merge_lora_layers(encoder)
    # Every encoder weight now differs from the pretrained file, so all of them are stored.
    encoder.requires_grad_(True)
    return merged


def _manifest(run_dir: Path, checkpoint: Path, model: Any, merged: int) -> dict[str, Any]:
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "r2gen_version": r2gen.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_run": str(Path(run_dir).resolve()),
        "source_checkpoint": str(Path(checkpoint).resolve()),
        "source_checkpoint_metadata": read_checkpoint_metadata(checkpoint),
        "merged_lora_layers": merged,
        "tokenizer": tokenizer_fingerprint(model.tokenizer),
    }
