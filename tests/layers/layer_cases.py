"""Shapes, inputs and small formulas the layer tests share."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from dynlab.kernels import per_sample

CONV = {1: F.conv1d, 2: F.conv2d}


ALL = layers.names()


#: the variants whose attention has a softmax temperature (from the registry)
SOFTMAX_ROUTED = [name for name in ALL if layers.get(name).uses_temperature]


def spatial_shape(dim: int, size: int = 6) -> tuple[int, ...]:
    return (size,) * dim if dim == 2 else (2 * size,)


def make_input(dim: int, batch: int = 2, channels: int = 4, size: int = 6, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *spatial_shape(dim, size), generator=g, dtype=dtype)


def out_size(n: int, k: int = 3, s: int = 1, p: int = 1, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def gap(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(2, x.dim())))


def expand(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * dim))


UNIT_CASES = [
    pytest.param(dim, stride, groups, id=f"d{dim}-s{stride}-g{groups}")
    for dim, stride, groups in itertools.product((1, 2), (1, 2), (1, 2))
]


def conv1(x_b, w, unit):
    return CONV[unit.dim](x_b, w, None, unit.stride, unit.padding, unit.dilation, unit.groups)


def layer_class(cls: type) -> type:
    """The class in ``dynlab.layers`` that a unit's class is, or is the fast version of."""
    return next(c for c in cls.__mro__ if c.__module__.startswith("dynlab.layers."))


def every_version(unit):
    """``(label, unit)``: the unit with its layer's plain forward, then its fast forward on every path that
    applies (the same weights throughout; a unit without paths once, as itself)."""
    plain = copy.deepcopy(unit)
    plain.__class__ = layer_class(type(unit))
    yield "plain", plain
    if not hasattr(unit, "path"):
        yield "fast", unit
        return
    count = unit.weight.shape[0]
    spatial = getattr(getattr(unit, "attention", None), "spatial_fc", None) is not None
    for path in ("auto", *per_sample.applicable_paths(count, spatial)):
        unit.path = path
        yield path, unit


def half_open_hard(dim, seed=0, bias=False):
    torch.manual_seed(seed)
    unit = layers.build("hard", 4, 8, 3, dim=dim, padding=1, bias=bias).double()
    with torch.no_grad():
        nn.init.normal_(unit.gate_logits.weight, std=2.0)
        unit.gate_logits.bias.copy_(torch.linspace(-4, 4, 8))
        if bias:
            nn.init.normal_(unit.bias)
    return unit
