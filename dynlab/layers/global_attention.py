"""``global``: squeeze-and-excitation after the block (the paper's 2.1.3, eq. 2-3; Hu et al. 2018).

A = sigmoid(W2 relu(W1 GAP(F))), F' = A * F, one weight per channel and per image.
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import AttentionRecorder, global_average, spread


class SqueezeExcite(AttentionRecorder):
    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(channels // reduction, min_hidden)
        self.channels = channels
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f"SqueezeExcite expects (batch, {self.channels}, ...), got {tuple(x.shape)}")
        attention = torch.sigmoid(self.excite(torch.relu(self.squeeze(global_average(x)))))
        self._record(se=attention)
        return x * spread(attention, x.dim() - 2)

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # one multiply per feature-map element; the two FC layers are counted as nn.Linear
        return x.numel()
