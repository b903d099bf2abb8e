"""Trainable-weight export helpers: wrapper names, DTensor gathering and loading, single-process checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from torch import nn

from r2gen.training.checkpoint import CheckpointError
from r2gen.training.distributed import (_clean_name, _copy_full_tensor, gather_trainable_state,
                                        load_trainable_weights, replica_difference, save_trainable_weights)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.aligner = nn.Linear(3, 2)
        self.llm = nn.Linear(2, 2)
        self.llm.requires_grad_(False)


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.mark.parametrize(("wrapped", "plain"), [
    ("module.aligner.weight", "aligner.weight"),
    ("_fsdp_wrapped_module.llm._fsdp_wrapped_module.layers.0.weight", "llm.layers.0.weight"),
    ("encoder._checkpoint_wrapped_module.lora_A.default.weight", "encoder.lora_A.default.weight"),
    ("encoder.submodule.weight", "encoder.submodule.weight"),
    ("aligner.module.weight", "aligner.module.weight"),
])
def test_clean_name(wrapped: str, plain: str):
    assert _clean_name(wrapped) == plain


def test_single_process_has_no_replica_difference(accelerator):
    assert replica_difference(accelerator, Tiny()) is None


def test_save_and_load_trainable_weights(accelerator, tmp_path: Path):
    source, target = Tiny(), Tiny()
    path = tmp_path / "best.safetensors"
    save_trainable_weights(accelerator, accelerator.prepare_model(source), path, {"step": 3})
    load_trainable_weights(accelerator, target, path)
    assert torch.equal(target.aligner.weight, source.aligner.weight)
    assert not torch.equal(target.llm.weight, source.llm.weight)  # frozen weights are not in the file
    target.llm.requires_grad_(True)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_trainable_weights(accelerator, target, path)


@pytest.fixture
def one_rank_group():
    """A gloo process group of one rank, enough to build DTensors as FSDP2 does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_dtensor_gather_and_copy(one_rank_group):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (1,))
    model = Tiny()
    model.aligner.weight = nn.Parameter(distribute_tensor(torch.arange(6.0).view(2, 3), mesh, [Shard(0)]))
    state = gather_trainable_state(model)
    assert set(state) == {"aligner.weight", "aligner.bias"}
    assert not isinstance(state["aligner.weight"], DTensor)
    assert torch.equal(state["aligner.weight"], torch.arange(6.0).view(2, 3))

    with torch.no_grad():
        _copy_full_tensor(model.aligner.weight, torch.full((2, 3), 7.0))
    assert isinstance(model.aligner.weight, DTensor)
    assert torch.equal(model.aligner.weight.full_tensor(), torch.full((2, 3), 7.0))
