"""The optimizer and the learning-rate schedule a run trains with."""
from __future__ import annotations

import torch

from .options import OPTIMIZERS, FitOptions


def make_optimizer(name: str, parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer ``fit`` trains with (``name``: one of ``OPTIMIZERS``).

    Adam and AdamW use PyTorch's fused kernels where every parameter is a float tensor on the CPU or a
    CUDA GPU: one pass over the parameters and their two moment buffers instead of several. The
    optimizer step costs in proportion to the parameters, not the MACs, and the variants with K kernels
    (``dyconv``, ``odconv4x``, ``local``) hold about 4 times ``base``'s parameters.
    """
    parameters = list(parameters)
    fused = bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")


#: the share of a one-cycle run spent warming up, from lr / 25 to lr
WARMUP_FRACTION = 0.15


def make_scheduler(options: FitOptions, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """``(scheduler, per_step)`` for ``options.lr_schedule``:

    - ``cosine``: decay from ``lr`` to 0 over all steps, stepped after every batch;
    - ``onecycle``: a linear warm-up over the first ``WARMUP_FRACTION`` of the steps, then cosine decay
      to nearly 0 (``OneCycleLR``; for Adam and AdamW it also cycles beta1 between 0.95 and 0.85): short
      runs from scratch tolerate a higher peak rate this way than with a constant start;
    - ``plateau``: ReduceLROnPlateau on the validation metric, stepped after every epoch, or
      ``(None, False)`` when ``plateau_patience`` is None.
    """
    total = options.epochs * steps_per_epoch
    if options.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total), True
    if options.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr, total_steps=total,
                                                   pct_start=WARMUP_FRACTION, anneal_strategy="cos"), True
    if options.plateau_patience is not None:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=options.mode, factor=options.plateau_factor, patience=options.plateau_patience,
            min_lr=options.plateau_min_lr), False
    return None, False
