"""Accelerate config files, the sweep config group and the gradient-checkpointing switches."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate

from r2gen.training.build import build_model

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"

ACCELERATE_CONFIGS = {
    "ddp": (DistributedType.MULTI_GPU, {}),
    "fsdp": (DistributedType.FSDP, {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}),
    "deepspeed_zero2": (DistributedType.DEEPSPEED, {"zero_stage": 2}),
    "deepspeed_zero3": (DistributedType.DEEPSPEED, {"zero_stage": 3}),
}


@pytest.mark.parametrize("name", sorted(ACCELERATE_CONFIGS))
def test_accelerate_config_loads(name: str):
    path = CONF_DIR / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    expected_type, expected_settings = ACCELERATE_CONFIGS[name]
    assert config.distributed_type == expected_type
    assert config.num_machines == 1
    plugin_settings = config.fsdp_config if expected_type == DistributedType.FSDP else config.deepspeed_config
    for key, value in expected_settings.items():
        assert plugin_settings[key] == value, key


@pytest.mark.parametrize("name", sorted(ACCELERATE_CONFIGS))
def test_accelerate_config_header_has_launch_line(name: str):
    header = [line for line in (CONF_DIR / "accelerate" / f"{name}.yaml").read_text().splitlines()
              if line.startswith("#")]
    launch = [line for line in header if "accelerate launch" in line]
    assert launch, f"{name}.yaml has no launch line in its header"
    assert f"--config_file conf/accelerate/{name}.yaml" in launch[0]
    assert any("Use it" in line for line in header), f"{name}.yaml does not say when to use it"


@pytest.fixture
def compose_config():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose(config_name="config", overrides=overrides, return_hydra_config=True)


def expand_sweep(cfg) -> list[list[str]]:
    """Return the jobs Hydra's basic sweeper makes from the config's ``hydra.sweeper.params``."""
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides(params)
    return BasicSweeper.split_arguments(overrides, max_batch_size=None)[0]


def test_sweep_alignment_jobs(compose_config):
    cfg = compose_config(["sweep=alignment"])
    assert cfg.hydra.sweep.dir.startswith("multirun/alignment_")
    assert expand_sweep(cfg) == [["tuning=shallow"], ["tuning=lora"], ["tuning=deep"]]


def test_sweep_depth_x_rank_jobs(compose_config):
    cfg = compose_config(["sweep=depth_x_rank"])
    jobs = expand_sweep(cfg)
    assert len(jobs) == 9
    assert jobs[0] == ["tuning=lora", "aligner=mlp", "aligner.depth=1", "tuning.lora.rank=4"]
    assert jobs[-1] == ["tuning=lora", "aligner=mlp", "aligner.depth=3", "tuning.lora.rank=16"]
    job = compose_config(["sweep=depth_x_rank", *jobs[5]])
    assert job.aligner.depth == 2
    assert instantiate(job.tuning).lora.rank == 16
    assert instantiate(job.tuning).encoder == "lora"


def test_sweep_optuna_file():
    text = (CONF_DIR / "sweep" / "optuna.yaml").read_text()
    assert 'pip install hydra-optuna-sweeper "sqlalchemy<2"' in text
    config = yaml.safe_load(text)
    assert config["defaults"] == [{"override /hydra/sweeper": "optuna"}]
    sweeper = config["hydra"]["sweeper"]
    assert sweeper["direction"] == "maximize"
    assert sweeper["params"]["trainer.lr"] == "tag(log, interval(1e-5, 1e-3))"
    assert sweeper["params"]["tuning.lora.rank"] == "choice(4, 8, 16)"


def optuna_plugin_installed() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:  # no hydra_plugins namespace at all
        return False


@pytest.mark.skipif(not optuna_plugin_installed(), reason="hydra-optuna-sweeper is not installed (optional; see conf/sweep/optuna.yaml)")
def test_sweep_optuna_composes(compose_config):
    cfg = compose_config(["sweep=optuna"])
    assert "optuna" in cfg.hydra.sweeper._target_.lower()


def test_gradient_checkpointing_switches(compose_config):
    overrides = ["encoder=tiny", "llm=tiny", "tuning=deep"]
    plain = build_model(compose_config(overrides), instantiate(compose_config(overrides).trainer))
    checkpointed_cfg = compose_config(overrides + ["trainer.gradient_checkpointing_llm=true",
                                                   "trainer.gradient_checkpointing_encoder=true"])
    checkpointed = build_model(checkpointed_cfg, instantiate(checkpointed_cfg.trainer))
    assert checkpointed.llm.is_activation_checkpointing
    assert not plain.llm.is_activation_checkpointing
    assert any(getattr(module, "gradient_checkpointing", False) for module in checkpointed.encoder.modules())
    assert "llm" not in checkpointed.frozen_modules  # a frozen LLM in eval mode would skip checkpointing

    checkpointed.load_state_dict(plain.state_dict())
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, 64, 64, generator=generator)
    targets = torch.randint(3, 1000, (2, 6), generator=generator)
    losses, gradients = [], []
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(0)  # the tiny Swin has stochastic depth, which draws from the global RNG
        loss = model(pixels, torch.tensor([1, 1]), targets, torch.ones_like(targets))
        loss.backward()
        losses.append(loss.item())
        gradients.append({name: param.grad.clone() for name, param in model.named_parameters() if param.requires_grad})
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert gradients[0].keys() == gradients[1].keys()
    assert any(name.startswith("encoder.") for name in gradients[0])
    for name, gradient in gradients[0].items():
        assert torch.allclose(gradient, gradients[1][name], atol=1e-6), name
