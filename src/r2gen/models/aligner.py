"""Aligner: maps vision tokens into the LLM's input-embedding space."""

from __future__ import annotations

from torch import Tensor, nn


class MLPAligner(nn.Module):
    """``depth`` Linear layers with GELU between them, then a LayerNorm of width ``out_features``.

    Depth 1 is R2GenGPT's mapper: one Linear then one LayerNorm, which for Swin-B (1024) into
    Llama-2-7B (4096) has 4,198,400 + 8,192 = 4,206,592 parameters. ``hidden_features`` is the
    width between layers when ``depth > 1`` and defaults to ``out_features``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        depth: int = 1,
        hidden_features: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"invalid aligner depth {depth}: it must be at least 1")
        hidden = hidden_features or out_features
        widths = [in_features] + [hidden] * (depth - 1) + [out_features]

        layers: list[nn.Module] = []
        for index in range(depth):
            if index > 0:
                layers.append(nn.GELU())
            layers.append(nn.Linear(widths[index], widths[index + 1]))
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.depth = depth

    def forward(self, tokens: Tensor) -> Tensor:
        """Map ``tokens[..., in_features]`` to ``[..., out_features]``."""
        return self.norm(self.layers(tokens))
