"""Each class's test result: accuracy for classification and time series, IoU for segmentation.

A mean hides where a method pays for what it assumes: orientation pooling answers the same for a
shape and its rotation, so it should lose on the classes that differ only by orientation.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import TaskData
from ..device import inputs_for
from ..engine.evaluate import logits_of
from ..metrics import ConfusionMatrix


@torch.no_grad()
def per_class(model: nn.Module, data: TaskData, batch_size: int = 64) -> dict[str, float | None]:
    """``{class name: value}`` on the test split: per-class accuracy (recall), or per-class IoU for
    segmentation; None for a class that the test split does not hold."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(data.num_classes, data.ignore_index)
    try:
        for x, target in DataLoader(data.test, batch_size=batch_size):
            matrix.update(logits_of(model(inputs_for(model, x))).float().cpu(), target)
    finally:
        model.train(was_training)
    values = matrix.iou() if data.metric == "miou" else matrix.recall()
    names = data.class_names or [str(k) for k in range(data.num_classes)]
    return {name: None if math.isnan(v) else round(float(v), 6) for name, v in zip(names, values.tolist())}
