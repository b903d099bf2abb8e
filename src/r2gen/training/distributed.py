"""Process-group helpers for the trainer: replica checks and trainable-weight export.

Under DDP every rank has a full replica, so the trainable weights can be read from any rank and
must be identical on all of them. Under FSDP and DeepSpeed the parameters are sharded, and the
trainable ones are gathered before they are written.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from safetensors.torch import load_file, save_file
from torch import nn

from r2gen.training.checkpoint import CheckpointError, load_trainable, save_trainable

log = logging.getLogger(__name__)

SHARDED_TYPES = (DistributedType.FSDP, DistributedType.DEEPSPEED)
# Name parts that FSDP1, activation checkpointing and torch.compile wrappers insert into parameter names.
WRAPPER_PARTS = {"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"}


def is_sharded(accelerator: Accelerator) -> bool:
    """Return whether Accelerate saves and loads the model itself (FSDP, DeepSpeed) instead of plain tensors."""
    return accelerator.distributed_type in SHARDED_TYPES


def replica_difference(accelerator: Accelerator, model: nn.Module) -> float | None:
    """Return the largest difference of trainable-weight checksums between rank 0 and any other rank.

    Each rank reduces each trainable tensor to its sum and its sum of absolute values in float64,
    and the ranks compare those checksums. Under DDP the result is 0.0 exactly. Returns None on one
    process and under FSDP or DeepSpeed, where ranks hold different shards by design.
    """
    if accelerator.num_processes == 1 or is_sharded(accelerator):
        return None
    parameters = [param.detach() for param in model.parameters() if param.requires_grad]
    local = torch.stack([value for param in parameters
                         for value in (param.double().sum(), param.double().abs().sum())])
    everyone = accelerator.gather(local.to(accelerator.device)).view(accelerator.num_processes, -1)
    return float((everyone - everyone[0]).abs().max())


def _clean_name(name: str) -> str:
    """Return the parameter name as the unwrapped model spells it."""
    parts = [part for part in name.split(".") if part not in WRAPPER_PARTS]
    if parts and parts[0] == "module":  # DDP and DeepSpeed engines keep the model as `.module`
        parts = parts[1:]
    return ".".join(parts)


def gather_trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return the full trainable tensors by their unwrapped names, on the CPU.

    Collective under FSDP2 (DTensor parameters) and DeepSpeed ZeRO-3 (partitioned parameters):
    every rank must call it.
    """
    state: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        tensor = param.detach()
        if hasattr(tensor, "full_tensor"):  # torch.distributed.tensor.DTensor under FSDP2
            tensor = tensor.full_tensor()
        elif hasattr(param, "ds_id"):  # DeepSpeed ZeRO-3 partitions parameters and marks them ds_id
            import deepspeed

            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                tensor = param.detach().clone()
        state[_clean_name(name)] = tensor.to("cpu").contiguous()
    return state


def save_trainable_weights(accelerator: Accelerator, model: nn.Module, path: Path,
                           metadata: dict[str, Any] | None = None) -> None:
    """Write the trainable weights to a safetensors file from the main process.

    Every rank must call it: under FSDP and DeepSpeed the weights are gathered collectively first.
    """
    if not is_sharded(accelerator):
        if accelerator.is_main_process:
            save_trainable(accelerator.unwrap_model(model), path, metadata)
        return
    # NOTE: this path runs only under FSDP or DeepSpeed on GPUs, which no test here exercises.
    state = gather_trainable_state(model)
    if accelerator.is_main_process:
        _save_state_atomic(state, Path(path), metadata or {})


def _save_state_atomic(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={key: json.dumps(value) for key, value in metadata.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_trainable_weights(accelerator: Accelerator, model: nn.Module, path: Path) -> None:
    """Load a trainable-only safetensors file into a prepared model on every rank.

    Keys must match the trainable parameters exactly, as in ``checkpoint.load_trainable``.
    """
    if not is_sharded(accelerator):
        load_trainable(accelerator.unwrap_model(model), path)
        return
    # NOTE: this path runs only under FSDP or DeepSpeed on GPUs, which no test here exercises.
    state = load_file(str(path))
    trainable = {_clean_name(name): param for name, param in model.named_parameters() if param.requires_grad}
    if set(state) != set(trainable):
        raise CheckpointError(
            f"checkpoint {path} does not match the model's trainable parameters: missing keys "
            f"{sorted(set(trainable) - set(state))[:10]}, unexpected keys {sorted(set(state) - set(trainable))[:10]}")
    with torch.no_grad():
        for name, param in trainable.items():
            _copy_full_tensor(param, state[name])


def _copy_full_tensor(param: torch.Tensor, full: torch.Tensor) -> None:
    if hasattr(param, "device_mesh"):  # DTensor under FSDP2: keep this rank's shard of the full tensor
        from torch.distributed.tensor import distribute_tensor

        full = full.to(param.device_mesh.device_type, param.dtype)
        param.copy_(distribute_tensor(full, param.device_mesh, param.placements))
    elif hasattr(param, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([param], modifier_rank=0):
            param.copy_(full.to(param.device, param.dtype))
    else:
        param.copy_(full.to(param.device, param.dtype))
