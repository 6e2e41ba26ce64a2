"""``orient`` with its rotated kernels gathered once and applied as one convolution."""
from __future__ import annotations

import torch

from ..layers.orient import OrientedConv
from .products import stacked_conv


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

    One gather along each filter (``rotation_index``) instead of R rotated copies and their
    concatenation. In this order a grouped convolution still keeps the groups apart (each group's
    filters, with their copies, stay in one contiguous block).
    """
    c_out = weight.shape[0]
    flat = weight.reshape(c_out, -1).index_select(1, index)
    return flat.reshape(-1, *weight.shape[1:])


class FastOrientedConv(OrientedConv):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
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
