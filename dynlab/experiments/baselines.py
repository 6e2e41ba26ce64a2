"""The trivial answer every table shows beside the models, computed from the test split itself.

Classification and time series: always answer the commonest training class (its share of the test
split). Segmentation: label every pixel background, scored with the same mean IoU as the models.
A model within ``NEAR`` of this has learned next to nothing, and the reports say so in words.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ..data import TaskData
from ..metrics import ConfusionMatrix

#: how close to the trivial answer a result may come before a report flags it (a share, 5 points)
NEAR = 0.05


def _targets(dataset) -> torch.Tensor:
    return torch.cat([target.reshape(len(target), -1) if target.dim() > 1 else target
                      for _, target in DataLoader(dataset, batch_size=256)])


def trivial_baseline(data: TaskData) -> dict:
    """``{"name": ..., "value": ...}``: the trivial answer's test metric for ``data``'s task."""
    if data.metric == "miou":
        targets = _targets(data.test)
        matrix = ConfusionMatrix(data.num_classes, data.ignore_index)
        matrix.update(torch.zeros_like(targets), targets)  # predictions: background (0) everywhere
        return {"name": "background everywhere", "value": round(matrix.miou(), 6)}
    train = _targets(data.train)
    commonest = int(torch.bincount(train).argmax())
    test = _targets(data.test)
    return {"name": "commonest class", "value": round(float((test == commonest).float().mean()), 6)}


def near_baseline(metric: float, baseline: float) -> bool:
    """Whether ``metric`` is within ``NEAR`` of (or below) the trivial answer."""
    return metric <= baseline + NEAR
