"""``orient``: rotated kernels with orientation pooling, what the seed's text (2.1.5) describes.

Each kernel is applied at 4 exact rotations (0, 90, 180, 270 degrees) in 2D, or as itself and
time-reversed in 1D; the output is the maximum over the orientations. Because the set of rotated
kernels is closed under rotation, the unit commutes with 90-degree rotations of a square input.
This is *not* ODConv (omni-dimensional dynamic convolution), which the seed cites by title.
"""
from __future__ import annotations

import torch
from torch import nn

from ._unit import ConvUnit, single_kernel
from .mixing import stacked_conv


def oriented_kernels(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """(C_out, C_in/g, *k) -> (R, C_out, C_in/g, *k): 4 rotations in 2D, identity and reversal in 1D."""
    if dim == 1:
        return torch.stack([weight, weight.flip(-1)])
    return torch.stack([torch.rot90(weight, r, dims=(-2, -1)) for r in range(4)])


def rotation_index(in_channels: int, kernel_size: int, dim: int) -> torch.Tensor:
    """Where each entry of a filter's R oriented copies comes from in the filter, flattened.

    A filter (C_in/g, *k) flattened has C_in/g * k^d entries; entry ``index[r, i, t]`` of the result
    is the one that lands on tap t of input channel i in orientation r (the taps of
    ``oriented_kernels``'s copies, as a permutation of the k^d taps).
    """
    taps = torch.arange(kernel_size ** dim)
    if dim == 1:
        orders = torch.stack([taps, taps.flip(0)])
    else:
        grid = taps.reshape(kernel_size, kernel_size)
        orders = torch.stack([torch.rot90(grid, r, dims=(0, 1)).reshape(-1) for r in range(4)])
    channels = torch.arange(in_channels).reshape(1, in_channels, 1) * taps.numel()
    return (channels + orders.unsqueeze(1)).reshape(-1)


def stacked_oriented_kernels(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in/g, *k) -> (C_out * R, C_in/g, *k): every filter followed by its other orientations.

    One gather along each filter (``rotation_index``), where rotating and stacking the whole weight
    made R strided copies and a concatenation of them: building the 512-channel kernels took 21 ms
    for the inference and 50 ms forward and backward, against 4-9 ms for the convolution itself
    (``benchmarks/results/cpu_orient_kernels.md``). In this order a grouped convolution still keeps
    the groups apart (each group's filters, with their copies, stay in one contiguous block).
    """
    c_out = weight.shape[0]
    flat = weight.reshape(c_out, -1).index_select(1, index)
    return flat.reshape(-1, *weight.shape[1:])


class OrientedConv(ConvUnit):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.dim == 2 and self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f"orient rotates its kernels, so they must be square; got kernel_size={self.kernel_size}")
        self.orientations = 4 if self.dim == 2 else 2
        self.weight = single_kernel(self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if self.has_bias else None
        index = rotation_index(self.in_channels // self.groups, self.kernel_size[0], self.dim)
        self.register_buffer("rotation_index", index, persistent=False)  # follows the weight's device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One dense convolution with the R rotated copies, then the max over R.

        The copies are stacked (filter, orientation), so the response is viewed as
        (B, C_out, R, *S) and reduced over R in place, without reordering it. ``max`` with
        indices is used whenever gradients are needed: its backward scatters into the winners and
        does not keep the R responses alive, unlike ``amax``'s.
        """
        self.check_input(x)
        responses = stacked_conv(self, x, stacked_oriented_kernels(self.weight, self.rotation_index))
        batch, spatial = responses.shape[0], responses.shape[2:]
        responses = responses.reshape(batch, self.out_channels, self.orientations, *spatial)
        if self.record_attention or torch.is_grad_enabled():
            best, winner = responses.max(dim=2)
            self._record(orientation=winner)
        else:
            best = responses.amax(dim=2)
        if self.bias is not None:
            best = best + self.bias.reshape(1, -1, *([1] * self.dim))
        return best

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # one convolution per orientation; the max is a comparison, not a multiply-add
        return self.orientations * self.conv_macs(x.shape[0], y[0, 0].numel())
