"""MLPAligner: structure, parameter counts and the Hydra options linear and mlp."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from r2gen.models.aligner import MLPAligner


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_depth_one_is_linear_then_layernorm() -> None:
    aligner = MLPAligner(1024, 4096)

    assert [type(layer) for layer in aligner.layers] == [nn.Linear]
    assert isinstance(aligner.norm, nn.LayerNorm)
    assert aligner.norm.normalized_shape == (4096,)
    assert count_parameters(aligner) == 4_206_592


def test_deeper_aligner_interleaves_gelu() -> None:
    aligner = MLPAligner(32, 48, depth=3, hidden_features=16)

    kinds = [type(layer) for layer in aligner.layers]
    assert kinds == [nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear]
    widths = [(layer.in_features, layer.out_features) for layer in aligner.layers if isinstance(layer, nn.Linear)]
    assert widths == [(32, 16), (16, 16), (16, 48)]
    assert count_parameters(aligner) == (32 * 16 + 16) + (16 * 16 + 16) + (16 * 48 + 48) + 2 * 48


def test_hidden_width_defaults_to_output() -> None:
    aligner = MLPAligner(8, 12, depth=2)

    first = aligner.layers[0]
    assert (first.in_features, first.out_features) == (8, 12)


def test_output_shape_and_normalisation() -> None:
    torch.manual_seed(0)
    aligner = MLPAligner(32, 64, depth=2)
    tokens = torch.randn(3, 5, 32)

    output = aligner(tokens)

    assert output.shape == (3, 5, 64)
    # A fresh LayerNorm (weight 1, bias 0) leaves each token with mean 0 and variance 1.
    assert torch.allclose(output.mean(dim=-1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(output.var(dim=-1, unbiased=False), torch.ones(3, 5), atol=1e-3)


def test_invalid_depth_rejected() -> None:
    with pytest.raises(ValueError, match="depth 0"):
        MLPAligner(8, 8, depth=0)


@pytest.mark.parametrize(("option", "depth"), [("linear", 1), ("mlp", 2)])
def test_hydra_options_build_partial(compose_config, option: str, depth: int) -> None:
    config = compose_config([f"+aligner={option}"])

    factory = instantiate(config.aligner)
    aligner = factory(in_features=16, out_features=24)

    assert isinstance(aligner, MLPAligner)
    assert aligner.depth == depth
    assert aligner(torch.zeros(2, 16)).shape == (2, 24)


def test_mlp_depth_override(compose_config) -> None:
    config = compose_config(["+aligner=mlp", "aligner.depth=4", "aligner.hidden_features=10"])

    aligner = instantiate(config.aligner)(in_features=16, out_features=24)

    assert sum(isinstance(layer, nn.Linear) for layer in aligner.layers) == 4
    assert aligner.layers[0].out_features == 10
