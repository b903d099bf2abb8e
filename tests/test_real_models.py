"""One training step of the CPU default: real EfficientNet-Lite0 and real SmolLM2-135M on real images."""

from __future__ import annotations

import functools

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from r2gen.data.annotation import load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.collate import ReportCollator
from r2gen.data.dataset import ReportDataset, build_image_transform
from r2gen.training.build import build_model
from tests_support import CONFIG_DIR


@pytest.fixture(scope="module")
def default_model():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config")
    assert cfg.encoder._target_.endswith("EfficientNetLite0Encoder")
    assert cfg.llm._target_.endswith("load_smollm2")
    return build_model(cfg), instantiate(cfg.data)


def test_default_trains_only_the_aligner(default_model):
    model, _ = default_model
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable == {"aligner.layers.0.weight", "aligner.layers.0.bias", "aligner.norm.weight", "aligner.norm.bias"}
    assert model.aligner.layers[0].in_features == 1280  # EfficientNet-Lite0 channels
    assert model.aligner.layers[0].out_features == 576  # SmolLM2-135M hidden size
    assert model.encoder.num_tokens == 49


def test_one_step_on_real_images(default_model, data_root):
    model, data = default_model
    root = data_root / "covid_cxr_notes"
    studies = load_annotation(root / "annotation.json")["train"][:2]
    transform = build_image_transform(224, model.encoder.image_mean, model.encoder.image_std)
    dataset = ReportDataset(studies, root / "images", transform, functools.partial(clean_report, rules="mimic_cxr"))
    batch = ReportCollator(model.tokenizer, 60)([dataset[0], dataset[1]])

    frozen_before = model.llm.get_input_embeddings().weight.detach().clone()
    encoder_before = next(model.encoder.parameters()).detach().clone()
    aligner_before = model.aligner.layers[0].weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    loss = model(batch["pixel_values"], batch["view_counts"], batch["target_ids"], batch["target_mask"])
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    # A pretrained LM on an unaligned prompt: well below uniform (ln 49152 = 10.8), well above zero.
    assert 1.0 < loss.item() < 10.8
    assert not torch.equal(model.aligner.layers[0].weight, aligner_before)
    assert torch.equal(model.llm.get_input_embeddings().weight, frozen_before)
    assert torch.equal(next(model.encoder.parameters()), encoder_before)
    assert not model.encoder.training  # frozen encoder stays in eval mode (batch-norm statistics fixed)
    assert not model.llm.training
