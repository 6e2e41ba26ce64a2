"""``base``: the plain, static convolution (the paper's 2.1.1)."""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, single_kernel


class StaticConv(ConvUnit):
    """A static convolution with the parameter names of ``nn.Conv1d``/``nn.Conv2d`` (``weight``, ``bias``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = single_kernel(self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if self.has_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.conv(x, self.weight, self.bias)

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        return self.conv_macs(x.shape[0], y[0, 0].numel())
