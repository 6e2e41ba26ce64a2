"""Loss and metrics of a model on a data set, in evaluation mode: ``evaluate``."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..device import autocast, pick_device, prepare_input, prepare_model
from ..metrics import IGNORE_INDEX
from . import distributed
from .distributed import Dist
from .meters import Meter
from .options import check_task


def logits_of(output) -> torch.Tensor:
    """Models return logits; torchvision's segmentation models return ``{"out": logits, ...}``."""
    return output["out"] if isinstance(output, dict) else output


@torch.no_grad()
def run_evaluation(model: nn.Module, loader: DataLoader, task: str, ignore_index: int, device: torch.device,
                    dist: Dist) -> dict[str, float]:
    was_training = model.training
    model.eval()
    meter = Meter(task, ignore_index, device)
    try:
        for x, y in loader:
            x, y = prepare_input(x, device), y.to(device)
            with autocast(device):
                logits = logits_of(model(x))
            loss = nn.functional.cross_entropy(logits.float(), y, ignore_index=ignore_index, reduction="sum")
            count = (y != ignore_index).sum() if task == "segmentation" else y.shape[0]
            meter.update(logits, y, loss, count)
    finally:
        model.train(was_training)
    meter.reduce(dist)
    return meter.results()


def evaluate(model: nn.Module, dataset: Dataset, task: str = "classification", *, batch_size: int = 64,
             device: str | torch.device | None = None, ignore_index: int = IGNORE_INDEX,
             num_workers: int = 0) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``dataset``, in evaluation mode at the model's current temperature.

    Classification and time series: ``loss``, ``accuracy`` and ``top5`` (with at least 5 classes).
    Segmentation: ``loss`` (per counted pixel), ``miou`` and ``pixel_accuracy``; ``ignore_index``
    pixels are left out. The model is moved to ``device`` (picked automatically when None). Under an
    initialised process group each process evaluates its share and the counts are summed.
    """
    check_task(task)
    device = pick_device(device)
    dist = distributed.current()
    prepare_model(model, device)
    loader = DataLoader(distributed.shard(dataset, dist), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    return run_evaluation(model, loader, task, ignore_index, device, dist)
