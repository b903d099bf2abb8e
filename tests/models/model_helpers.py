"""Helpers shared by the model building-block tests."""

from __future__ import annotations

from torch import nn


class Composite(nn.Module):
    """Plain container with the three children that ``apply_tuning`` expects."""

    def __init__(self, encoder: nn.Module, aligner: nn.Module, llm: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.aligner = aligner
        self.llm = llm
