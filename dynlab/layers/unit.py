"""What every conv unit shares: its ``nn.ConvNd`` arguments and their checks, the functional convolution,
the MAC count of one convolution, attention recording and kernel initialisation.

A *conv unit* replaces a 3x3 convolution inside a residual block. It is built from the same
arguments as ``nn.Conv1d``/``nn.Conv2d`` (``dim`` picks which) plus options of its own.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_CONV_FN = {1: F.conv1d, 2: F.conv2d}


def check_dim(dim: int) -> None:
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 (time series) or 2 (images), got {dim!r}")


def as_tuple(value: int | Sequence[int], dim: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dim
    value = tuple(int(v) for v in value)
    if len(value) != dim:
        raise ValueError(f"{what} must be an int or a sequence of {dim} ints for dim={dim}, got {value}")
    return value


def global_average(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling over every spatial axis: (B, C, *S) -> (B, C)."""
    return x.mean(dim=tuple(range(2, x.dim())))


def spread(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, C) -> (B, C, 1, ...) with ``dim`` trailing singleton axes, to broadcast over space."""
    return t.reshape(*t.shape, *([1] * dim))


class AttentionRecorder(nn.Module):
    """Keeps what a module's attention looked like on the last forward, when asked to.

    ``dynlab.layers.collect_attention`` switches ``record_attention`` on for one forward;
    otherwise recording is a single boolean test.
    """

    record_attention: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.record_attention = False
        self.recorded: dict[str, torch.Tensor] = {}

    def _record(self, **kinds: torch.Tensor) -> None:
        if self.record_attention:
            for kind, value in kinds.items():
                self.recorded[kind] = value.detach().cpu()


def batch_norm(channels: int, dim: int) -> nn.Module:
    return (nn.BatchNorm1d, nn.BatchNorm2d)[dim - 1](channels)


def norm_after(unit: nn.Module, channels: int, dim: int) -> nn.Module:
    """The BatchNorm a block puts after ``unit``, or ``nn.Identity`` where the unit normalises its own output
    (``hard`` with ``gate_after_norm``, whose gates act after the normalisation)."""
    if getattr(unit, "normalizes_output", False):
        return nn.Identity()
    return batch_norm(channels, dim)


class ConvUnit(AttentionRecorder):
    """Base class of all conv units: holds the ``nn.ConvNd`` arguments and checks inputs."""

    #: True for a unit that ends with its own BatchNorm, so that the block adds none (``norm_after``)
    normalizes_output = False
    #: whether ``set_temperature`` applies to this unit
    uses_temperature = False
    #: True for a unit whose attention normalises over the batch (ODConv's BatchNorm): see
    #: ``dynlab.layers.needs_precise_batchnorm``
    batchnorm_in_attention = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = False,
        dim: int = 2,
    ) -> None:
        super().__init__()
        check_dim(dim)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be divisible by groups ({groups})"
            )
        if isinstance(padding, str):
            raise ValueError("padding must be given in pixels (e.g. kernel_size // 2), not as a string")
        self.dim = dim
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_tuple(kernel_size, dim, "kernel_size")
        self.stride = as_tuple(stride, dim, "stride")
        self.padding = as_tuple(padding, dim, "padding")
        self.dilation = as_tuple(dilation, dim, "dilation")
        self.groups = groups
        self.has_bias = bool(bias)
        self.temperature = 1.0
        # auxiliary loss term added by the last training forward (see dynlab.layers.auxiliary_loss)
        self.aux_term: torch.Tensor | None = None

    # -- helpers -----------------------------------------------------------------------------
    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def check_input(self, x: torch.Tensor) -> None:
        axes = "length" if self.dim == 1 else "height, width"
        if x.dim() != self.dim + 2:
            raise ValueError(
                f"{type(self).__name__} with dim={self.dim} expects a batched input of shape "
                f"(batch, channels, {axes}), got a tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int | None = None):
        return _CONV_FN[self.dim](x, weight, bias, self.stride, self.padding, self.dilation, groups or self.groups)

    def output_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """Spatial sizes of this unit's output for input ``x``."""
        return tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        )

    def output_positions(self, x: torch.Tensor) -> int:
        """Number of output positions (product of the output's spatial sizes) for input ``x``."""
        return math.prod(self.output_shape(x))

    def conv_macs(self, batch: int, positions: int) -> int:
        """MACs of one convolution of this shape with one kernel per sample."""
        return batch * positions * self.out_channels * (self.in_channels // self.groups) * self.kernel_volume

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """MACs this unit does itself (child modules are counted on their own). See dynlab.flops."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.has_bias:
            s += ", bias=False"
        return s + f", dim={self.dim}"


def stacked_kernels(count: int, shape: tuple[int, ...]) -> nn.Parameter:
    """A parameter of shape (count, *shape) holding ``count`` independently initialised kernels."""
    weight = torch.empty(count, *shape)
    for kernel in weight:
        nn.init.kaiming_normal_(kernel, mode="fan_out", nonlinearity="relu")
    return nn.Parameter(weight)


def single_kernel(shape: tuple[int, ...]) -> nn.Parameter:
    weight = torch.empty(*shape)
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    return nn.Parameter(weight)


def conv_per_sample(unit: ConvUnit, x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor | None = None):
    """Convolve every sample with its own kernel: ``weights`` is (B, C_out, C_in/g, *k), ``bias`` (B, C_out).

    The batch-as-groups trick of Chen et al. and the ODConv and CondConv references: the batch becomes the
    channels of one sample, the B kernels the groups of one grouped convolution.
    """
    batch = x.shape[0]
    out = unit.conv(x.reshape(1, batch * unit.in_channels, *x.shape[2:]),
                    weights.reshape(batch * unit.out_channels, *weights.shape[2:]),
                    None if bias is None else bias.reshape(-1), groups=batch * unit.groups)
    return out.reshape(batch, unit.out_channels, *out.shape[2:])
