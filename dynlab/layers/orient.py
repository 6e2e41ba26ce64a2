"""``orient``: rotated kernels with orientation pooling, what the seed's text (2.1.5) describes.

Each kernel is applied at 4 exact rotations (0, 90, 180, 270 degrees) in 2D, or as itself and
time-reversed in 1D; the output is the maximum over the orientations. Because the set of rotated
kernels is closed under rotation, the unit commutes with 90-degree rotations of a square input.
This is *not* ODConv (omni-dimensional dynamic convolution), which the seed cites by title.
"""
from __future__ import annotations

import torch
from torch import nn

from ._unit import ConvUnit, single_kernel, stack_for_dense_conv
from .mixing import stacked_conv


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
        """One dense convolution with the R rotated copies, then the max over R.

        The copies are stacked (group, orientation, filter), so the response is viewed as
        (B, g, R, C_out/g, *S) and reduced over R in place, without reordering it. ``max`` with
        indices is used whenever gradients are needed: its backward scatters into the winners and
        does not keep the R responses alive, unlike ``amax``'s.
        """
        self.check_input(x)
        kernels = stack_for_dense_conv(oriented_kernels(self.weight, self.dim), self.groups)
        responses = stacked_conv(self, x, kernels)
        batch, spatial = responses.shape[0], responses.shape[2:]
        responses = responses.reshape(batch, self.groups, self.orientations, -1, *spatial)
        if self.record_attention or torch.is_grad_enabled():
            best, winner = responses.max(dim=2)
            self._record(orientation=winner.reshape(batch, self.out_channels, *spatial))
        else:
            best = responses.amax(dim=2)
        best = best.reshape(batch, self.out_channels, *spatial)
        if self.bias is not None:
            best = best + self.bias.reshape(1, -1, *([1] * self.dim))
        return best

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # one convolution per orientation; the max is a comparison, not a multiply-add
        return self.orientations * self.conv_macs(x.shape[0], y[0, 0].numel())
