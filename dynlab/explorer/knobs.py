"""The live knobs: what a mechanism lets a student turn at inference, and how each is put back.

The explorer shares its models with the notebook that built it, so every knob is a context manager
that leaves the model exactly as it found it.

- ``temperature`` (``dyconv``, ``odconv``, ``odconv4x``, ``local``): the softmax/sigmoid temperature of
  the attention; each unit's own temperature is restored afterwards.
- ``gate_offset`` (``hard``): an offset added to every gate logit z, so a gate is open when
  sigmoid(z + offset) > 0.5. The budget that set the open rate is only a training loss; this is the
  inference-time dial it leaves. Put on with forward hooks, which are removed afterwards.
- ``rotated`` (``orient``, images): the input turned by quarter turns, to see the winning orientation turn.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .. import layers
from ..layers import ConvUnit, GatedConv, OrientedConv


def temperature_units(model: nn.Module) -> list[ConvUnit]:
    return [m for m in model.modules() if isinstance(m, ConvUnit) and m.uses_temperature]


def own_temperature(model: nn.Module) -> float | None:
    """The temperature the model's attention runs at (its first unit's), None if it uses none."""
    units = temperature_units(model)
    return float(units[0].temperature) if units else None


def has_gates(model: nn.Module) -> bool:
    return any(isinstance(m, GatedConv) for m in model.modules())


def has_orientations(model: nn.Module) -> bool:
    return any(isinstance(m, OrientedConv) for m in model.modules())


@contextlib.contextmanager
def temperature(model: nn.Module, value: float | None):
    """Every temperature unit of ``model`` at ``value`` inside the block (None: left as it is)."""
    units = temperature_units(model)
    own = [unit.temperature for unit in units]
    try:
        if value is not None and units:
            layers.set_temperature(model, value)
        yield
    finally:
        for unit, previous in zip(units, own):
            unit.temperature = previous


class _AddToLogits:
    """Forward hook on a gate unit's last linear layer: z -> z + offset (a class, so it reads in a traceback)."""

    def __init__(self, offset: float) -> None:
        self.offset = float(offset)

    def __call__(self, module, inputs, output):
        return output + self.offset


@contextlib.contextmanager
def gate_offset(model: nn.Module, offset: float):
    """``offset`` added to the gate logits of every ``hard`` unit inside the block (0: no change)."""
    handles = []
    try:
        if offset:
            handles = [m.gate_logits.register_forward_hook(_AddToLogits(offset))
                       for m in model.modules() if isinstance(m, GatedConv)]
        yield
    finally:
        for handle in handles:
            handle.remove()


def rotated(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """An image (C, H, W) or a mask (H, W) turned counter-clockwise by ``quarter_turns`` x 90 degrees."""
    if quarter_turns % 4 == 0:
        return x
    return torch.rot90(x, quarter_turns, dims=(-2, -1))
