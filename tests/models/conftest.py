"""Fixtures for the model building-block tests: Hydra config access and tiny composites.

The SmolLM2 tokenizer and model come from the r2gen cache ($R2GEN_CACHE_DIR, default
~/.cache/r2gen). The first run converts the packaged GGUF there, which takes about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from model_helpers import Composite  # noqa: E402

from r2gen.models.aligner import MLPAligner  # noqa: E402
from r2gen.models.llm import smollm2_path  # noqa: E402
from r2gen.models.tiny import tiny_llm, tiny_swin_encoder  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="session")
def smollm2_folder() -> str:
    return smollm2_path()


@pytest.fixture
def tiny_composite(smollm2_folder: str) -> Composite:
    """Tiny Swin (16 tokens x 64) + linear aligner + tiny Llama (hidden 64, 2 layers), all fresh."""
    encoder = tiny_swin_encoder()
    llm, _ = tiny_llm()
    aligner = MLPAligner(encoder.num_features, llm.config.hidden_size)
    return Composite(encoder, aligner, llm)


@pytest.fixture
def compose_config() -> Iterator[Callable[[list[str]], DictConfig]]:
    """Compose the repo's conf/ groups from overrides alone, e.g. ``["+tuning=lora"]``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose(overrides=overrides)
