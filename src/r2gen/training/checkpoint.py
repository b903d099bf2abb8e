"""Trainable-only checkpoints in safetensors, loaded with strict key checks.

A checkpoint holds only the parameters with ``requires_grad=True`` (aligner, plus LoRA or the whole
encoder), so it stays small even with a 7B LLM. Loading demands exactly those keys: a missing or
unexpected key is an error that names it, because a silent partial load (for example LoRA weights
skipped when LoRA is not enabled) would evaluate a different model than the one trained.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from r2gen.training.io import publish_file


class CheckpointError(RuntimeError):
    """A checkpoint does not match the model it is loaded into."""


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return the trainable parameters by name, detached and contiguous on the CPU."""
    return {
        name: param.detach().to("cpu").contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def save_trainable(model: nn.Module, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """Save the trainable parameters of ``model`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text_metadata = {key: json.dumps(value) for key, value in (metadata or {}).items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(trainable_state_dict(model), tmp, metadata=text_metadata)
        publish_file(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_trainable(model: nn.Module, path: Path) -> None:
    """Load a trainable-only checkpoint into ``model``; keys and shapes must match exactly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = load_file(str(path))
    expected = {name: param for name, param in model.named_parameters() if param.requires_grad}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match the model's trainable parameters: "
            f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}. "
            "Load it with the same encoder, aligner, llm and tuning configs it was trained with."
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"checkpoint {path}: {name} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[name].shape)}")
    with torch.no_grad():
        for name, tensor in state.items():
            expected[name].copy_(tensor.to(expected[name].device, expected[name].dtype))


def read_checkpoint_metadata(path: Path) -> dict[str, Any]:
    """Return the JSON metadata stored in a checkpoint's header."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: json.loads(value) for key, value in (handle.metadata() or {}).items()}
