"""The model-level protocol: what a model built from dynlab units offers, whatever its variants.

``bind`` gives ``local`` units their shared kernel representation; ``set_temperature``,
``uses_temperature``, ``auxiliary_loss`` and ``needs_precise_batchnorm`` are what training asks of a
model (the engine's callbacks call them, so the loop never needs to know a variant);
``collect_attention`` is what the notebooks draw.
"""
from __future__ import annotations

import torch
from torch import nn

from ..device import inputs_for
from .unit import AttentionRecorder, ConvUnit
from .local_attention import KernelRepresentation, PixelMixtureConv

#: what ``collect_attention`` returns per unit: kind -> its shape for a batch of B
ATTENTION_KINDS = {
    "kernel": "(B, K): the weight of each kernel",
    "channel": "(B, C_in): input-channel attention",
    "filter": "(B, C_out): output-channel attention",
    "spatial": "(B, k^d): attention over kernel positions",
    "pixel": "(B, K, *S): the weight of each kernel at each output position",
    "gates": "(B, C_out): open (1) or closed (0) output channels",
    "orientation": "(B, C_out, *S): the winning orientation at each output position",
    "se": "(B, C): squeeze-and-excitation channel weights",
}


def set_temperature(model: nn.Module, temperature: float) -> int:
    """Set the softmax/sigmoid temperature of every unit that uses one; returns how many."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    count = 0
    for module in model.modules():
        if isinstance(module, ConvUnit) and module.uses_temperature:
            module.temperature = float(temperature)
            count += 1
    return count


def uses_temperature(model: nn.Module) -> bool:
    return any(isinstance(m, ConvUnit) and m.uses_temperature for m in model.modules())


def needs_precise_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` should have its BatchNorm statistics recomputed before it is evaluated.

    ODConv's attention normalises the pooled features over the batch. Where those features barely
    vary from sample to sample (the first layers on z-normalised series, whose average is about 0),
    BatchNorm divides by a tiny variance, and the running averages, which trail the weights by a few
    steps, no longer match: the attention in evaluation mode differs from training, every later
    BatchNorm sees other inputs than its running statistics describe, and accuracy collapsed (on
    Adiac, 4% in evaluation mode against 34% in training mode on the same series). Recomputing the
    statistics with the final weights ("precise BN", ``dynlab.engine.recalibrate_batchnorm``) fixes it.
    """
    return any(isinstance(m, ConvUnit) and m.batchnorm_in_attention for m in model.modules())


def auxiliary_loss(model: nn.Module) -> torch.Tensor | float:
    """The mean of the terms the units added on the last training forward (e.g. ``hard``'s budget).

    Returns 0.0 for a model whose units add none (and in evaluation mode).
    """
    terms = [m.aux_term for m in model.modules() if isinstance(m, ConvUnit) and m.aux_term is not None]
    if not terms:
        return 0.0
    return torch.stack(terms).mean()


class TemperatureSchedule:
    """Linear annealing from ``start`` to ``end`` over ``anneal_steps`` iterations, then ``end``.

    ``TemperatureSchedule.for_run(epochs, steps_per_epoch)`` anneals over the first
    min(10 epochs, a third of the run), so that even a short run ends at temperature 1.
    """

    def __init__(self, anneal_steps: int, start: float = 30.0, end: float = 1.0) -> None:
        if anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")
        self.anneal_steps = int(anneal_steps)
        self.start = float(start)
        self.end = float(end)

    @classmethod
    def for_run(cls, epochs: int, steps_per_epoch: int, start: float = 30.0, end: float = 1.0,
                max_anneal_epochs: int = 10) -> "TemperatureSchedule":
        anneal_epochs = min(float(max_anneal_epochs), epochs / 3)
        return cls(round(anneal_epochs * steps_per_epoch), start, end)

    def __call__(self, step: int) -> float:
        if self.anneal_steps == 0 or step >= self.anneal_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.anneal_steps

    def __repr__(self) -> str:
        return f"TemperatureSchedule(anneal_steps={self.anneal_steps}, start={self.start}, end={self.end})"


class _ResetRepresentation:
    """Forward pre-hook that zeroes the shared kernel representation (a class, so models pickle)."""

    def __init__(self, state: KernelRepresentation) -> None:
        self.state = state

    def __call__(self, module, args):
        self.state.reset()


def reset_kernel_representation(model: nn.Module) -> None:
    """Zero the kernel representation of ``model``'s ``local`` units: what starts every forward.

    ``bind``'s hook does it when ``model(x)`` is called; a forward that enters elsewhere (a ResNet's
    ``features``) calls this itself, or it would carry the last call's representation over.
    """
    for state in {id(m.shared): m.shared for m in model.modules()
                  if isinstance(m, PixelMixtureConv) and m.shared is not None}.values():
        state.reset()


def bind(model: nn.Module) -> nn.Module:
    """Give a model's ``local`` units one shared kernel representation, reset at every forward.

    Model constructors call this; call it yourself on a model you assemble by hand.
    """
    units = [m for m in model.modules() if isinstance(m, PixelMixtureConv)]
    if units:
        state = KernelRepresentation()
        for unit in units:
            unit.shared = state
        model.register_forward_pre_hook(_ResetRepresentation(state))
    return model


@torch.no_grad()
def collect_attention(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """One forward in eval mode; returns ``{module_name: {kind: tensor}}`` (detached, on the CPU).
    ``x`` may be on another device than the model: it is moved to the model's.

    The kinds and their shapes are ``ATTENTION_KINDS``; which a variant records, its registry entry.
    """
    recorders = {n: m for n, m in model.named_modules() if isinstance(m, AttentionRecorder)}
    modes = {m: m.training for m in model.modules()}  # each module's own mode (frozen parts may be in eval)
    model.eval()
    for module in recorders.values():
        module.record_attention = True
        module.recorded = {}
    try:
        model(inputs_for(model, x))
    finally:
        for module in recorders.values():
            module.record_attention = False
        for module, training in modes.items():
            module.training = training
    result = {name: dict(m.recorded) for name, m in recorders.items() if m.recorded}
    for module in recorders.values():
        module.recorded = {}
    return result
