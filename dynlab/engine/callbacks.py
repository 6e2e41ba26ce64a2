"""What a run does beyond its loop, as callbacks: the model's own needs and the user's epoch-end hooks.

The loop in ``fit.py`` knows no variant. What a model's units need during training reaches it
here, through the model-level protocol of ``dynlab.layers``: ``model_callbacks`` attaches
``TemperatureAnnealing`` to models whose units use a temperature, ``AuxiliaryLoss`` (e.g. ``hard``'s
budget term) and ``PreciseBatchNorm`` to models whose attention normalises over the batch (ODConv).

A ``Callback`` overrides the hooks it needs. A plain function is an epoch-end callback: it gets an
``EpochEnd`` after each epoch's checkpoint is written and may set ``stop``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .. import layers
from ..device import autocast, prepare_input
from .history import History

if TYPE_CHECKING:
    from .fit import Trainer


@dataclass
class EpochEnd:
    """What an epoch-end callback receives (after that epoch's checkpoint is written).

    Set ``stop = True`` to end training after this epoch. Callbacks run on every process under
    ``torchrun``; one that writes files should check ``is_main``.
    """

    epoch: int
    record: dict
    history: History
    model: nn.Module
    optimizer: torch.optim.Optimizer
    out_dir: Path | None
    rank: int = 0
    stop: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Callback:
    """Hooks the training loop calls, in this order; each does nothing unless overridden."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """After set-up and any resume, before the first epoch."""

    def on_step_start(self, trainer: "Trainer") -> None:
        """Before each training batch's forward."""

    def extra_loss(self, trainer: "Trainer") -> torch.Tensor | float:
        """A term added to the task loss of the step just forwarded (reported as ``train_aux_loss``)."""
        return 0.0

    def before_validation(self, trainer: "Trainer") -> dict:
        """After the epoch's last step; returns fields for the epoch's record."""
        return {}

    def best_fields(self, trainer: "Trainer") -> dict:
        """What ``best.pt`` keeps beside the best epoch's weights, for ``restore_best``."""
        return {}

    def restore_best(self, trainer: "Trainer", fields: dict) -> None:
        """The best epoch's weights are back in the model; ``fields`` is what ``best.pt`` keeps."""

    def on_epoch_end(self, context: EpochEnd) -> None:
        """After the epoch's checkpoint is written; may set ``context.stop``."""


class EpochEndFunction(Callback):
    def __init__(self, function: Callable[[EpochEnd], Any]) -> None:
        self.function = function

    def on_epoch_end(self, context: EpochEnd) -> None:
        self.function(context)


class TemperatureAnnealing(Callback):
    """Anneal the units' temperature from ``start`` to ``end`` per iteration (``TemperatureSchedule.for_run``).

    The validation runs at the temperature reached after the epoch's last step, and the best epoch
    is tested (and saved) at the temperature it was validated at.
    """

    def __init__(self, start: float = 30.0, end: float = 1.0) -> None:
        self.start, self.end = start, end
        self.schedule: layers.TemperatureSchedule | None = None
        self.current: float | None = None

    def on_fit_start(self, trainer) -> None:
        self.schedule = layers.TemperatureSchedule.for_run(trainer.options.epochs, trainer.steps_per_epoch,
                                                           self.start, self.end)

    def on_step_start(self, trainer) -> None:
        layers.set_temperature(trainer.model, self.schedule(trainer.step))

    def before_validation(self, trainer) -> dict:
        self.current = self.schedule(trainer.step)  # where the schedule stands after this epoch's last step
        layers.set_temperature(trainer.model, self.current)
        return {"temperature": self.current}

    def best_fields(self, trainer) -> dict:
        return {"temperature": self.current}

    def restore_best(self, trainer, fields: dict) -> None:
        if fields.get("temperature") is not None:
            layers.set_temperature(trainer.model, fields["temperature"])


class AuxiliaryLoss(Callback):
    """Add the terms the units put on the last training forward (``layers.auxiliary_loss``)."""

    def extra_loss(self, trainer) -> torch.Tensor | float:
        return layers.auxiliary_loss(trainer.model)


class PreciseBatchNorm(Callback):
    """Recompute the BatchNorm statistics over the training set before every validation."""

    def before_validation(self, trainer) -> dict:
        recalibrate_batchnorm(trainer.net, trainer.train_loader, trainer.device)
        return {}


def model_callbacks(model: nn.Module, precise_batchnorm: bool,
                    temperature: tuple[float, float] = (30.0, 1.0)) -> list[Callback]:
    """The callbacks ``model``'s units ask for (see the module doc); ``temperature`` is (start, end)."""
    callbacks: list[Callback] = []
    if layers.uses_temperature(model):
        callbacks.append(TemperatureAnnealing(*temperature))
    callbacks.append(AuxiliaryLoss())
    if precise_batchnorm:
        callbacks.append(PreciseBatchNorm())
    return callbacks


def as_callbacks(callbacks: Iterable[Callback | Callable[[EpochEnd], Any]] | None) -> Sequence[Callback]:
    """Callback objects as they are; plain functions as epoch-end callbacks."""
    return [c if isinstance(c, Callback) else EpochEndFunction(c) for c in callbacks or ()]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable, device: torch.device | None = None) -> int:
    """"Precise BN": recompute every BatchNorm's running statistics with the model's current weights.

    One pass over ``loader`` in training mode without gradients, each BatchNorm averaging its batch
    statistics over the whole pass (instead of the exponential average of training, which trails the
    weights). Returns how many BatchNorm layers were recomputed. ``fit`` calls it before every
    evaluation for models with ``dynlab.layers.needs_precise_batchnorm`` (``PreciseBatchNorm``).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    device = device or next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass
    model.train()
    try:
        for batch in loader:
            with autocast(device):
                model(prepare_input(batch[0], device))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes.items():
            module.training = training
    return len(norms)
