"""``orient``: rotated kernels with orientation pooling, what the paper's text (2.1.5) describes.

Each kernel is applied at 4 exact rotations (0, 90, 180, 270 degrees) in 2D, or as itself and
time-reversed in 1D; the output is the maximum over the orientations:

    y_c(p) = max_r (rot_r(W_c) * x)(p),

and the winning r at each output position is what the unit reports. Because the set of rotated
kernels is closed under rotation, the unit commutes with 90-degree rotations of a square input.
This is *not* ODConv (omni-dimensional dynamic convolution), which the paper cites by title.
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, single_kernel


def oriented_kernels(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """(C_out, C_in/g, *k) -> (R, C_out, C_in/g, *k): 4 rotations in 2D, identity and reversal in 1D."""
    if dim == 1:
        return torch.stack([weight, weight.flip(-1)])
    return torch.stack([torch.rot90(weight, r, dims=(-2, -1)) for r in range(4)])


class OrientedConv(ConvUnit):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.dim == 2 and self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f"orient rotates its kernels, so they must be square; got kernel_size={self.kernel_size}")
        self.orientations = 4 if self.dim == 2 else 2
        self.weight = single_kernel(self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if self.has_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        responses = torch.stack([self.conv(x, w) for w in oriented_kernels(self.weight, self.dim)], dim=2)
        best, winner = responses.max(dim=2)  # (B, C_out, R, *S) -> the strongest orientation per position
        self._record(orientation=winner)
        if self.bias is not None:
            best = best + self.bias.reshape(1, -1, *([1] * self.dim))
        return best

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # one convolution per orientation; the max is a comparison, not a multiply-add
        return self.orientations * self.conv_macs(x.shape[0], y[0, 0].numel())
