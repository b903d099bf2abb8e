"""Every shipped config composes, and the paper's experiment files set the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests_support import CONFIG_DIR

EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_canonical_gpu_command_composes():
    cfg = compose_config(["encoder=swin", "llm=llama2_7b", "tuning=lora"])
    assert cfg.encoder.path == "microsoft/swin-base-patch4-window7-224"
    assert cfg.llm.path == "meta-llama/Llama-2-7b-chat-hf"
    assert cfg.tuning.encoder == "lora"
    assert cfg.tuning.lora.rank == 16 and cfg.tuning.lora.alpha == 16 and cfg.tuning.lora.dropout == 0.1


def test_default_is_cpu_embedded_model():
    cfg = compose_config([])
    assert cfg.encoder._target_.endswith("EfficientNetLite0Encoder")
    assert cfg.llm._target_.endswith("load_smollm2")
    assert cfg.tuning.encoder == "frozen" and cfg.tuning.llm == "frozen"
    assert cfg.data.name == "covid_cxr"
    assert cfg.generation.num_beams == 3
    assert cfg.generation.repetition_penalty == 2.0 and cfg.generation.length_penalty == 2.0


@pytest.mark.parametrize("name", ["trainer", "data", "logger", "evaluation", "tuning"])
def test_group_configs_instantiate(name):
    cfg = compose_config([])
    instance = instantiate(cfg[name])
    assert type(instance).__name__.endswith("Config")


def test_unknown_key_in_config_file_fails():
    cfg = compose_config([])
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.lerning_rate = 0.1
    with pytest.raises(Exception, match="lerning_rate"):
        instantiate(cfg.trainer)


def test_unknown_override_fails():
    with pytest.raises(ConfigCompositionException, match="lerning_rate"):
        compose_config(["trainer.lerning_rate=0.1"])


def test_six_paper_experiments_exist():
    assert EXPERIMENTS == ["iu_xray_deep", "iu_xray_lora", "iu_xray_shallow",
                           "mimic_cxr_deep", "mimic_cxr_lora", "mimic_cxr_shallow"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_paper_experiment_settings(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    dataset, setting = experiment.rsplit("_", 1)
    assert cfg.data.name == dataset
    assert cfg.encoder._target_.endswith("load_swin_encoder")
    assert cfg.llm.path == "meta-llama/Llama-2-7b-chat-hf"
    assert cfg.tuning.encoder == {"shallow": "frozen", "lora": "lora", "deep": "full"}[setting]
    assert cfg.tuning.llm == "frozen"
    assert cfg.trainer.lr == 1e-4 and cfg.trainer.min_lr == 1e-6 and cfg.trainer.warmup_steps == 0
    assert cfg.trainer.precision == "bf16"
    if dataset == "iu_xray":
        assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.data.max_target_tokens) == (15, 8, 60)
        assert (cfg.generation.min_new_tokens, cfg.generation.max_new_tokens) == (40, 100)
    else:
        assert (cfg.trainer.epochs, cfg.data.max_target_tokens) == (5, 100)
        assert cfg.trainer.batch_size == (6 if setting == "deep" else 8)
        assert (cfg.generation.min_new_tokens, cfg.generation.max_new_tokens) == (80, 120)
    header = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text().splitlines()[:6]
    assert any("accelerate launch" in line for line in header)
