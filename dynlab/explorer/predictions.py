"""What a model predicts on the explorer's samples, and which of them it gets wrong.

Computed once per (variant, task), in batches, with the model as it is (its own temperature, gates
as trained, inputs as stored): the "misclassified only" filter is a property of the model, not of the
knobs being turned.

Misclassified means:

- classification and time series: the predicted class is not the label;
- segmentation: the scene's **largest foreground class** (the class other than background with the
  most pixels in the true mask) is missed: fewer than half of its pixels are predicted as it. A scene
  without foreground counts when fewer than half of its labelled pixels are right.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..device import inputs_for
from ..metrics import predicted_labels

BATCH = 16
IGNORE = 255


def largest_foreground_class(mask: torch.Tensor) -> int | None:
    """The class (not 0, the background, nor 255, ignored) with the most pixels in ``mask``; None if none."""
    values = mask[(mask != 0) & (mask != IGNORE)]
    if values.numel() == 0:
        return None
    return int(torch.bincount(values.flatten()).argmax())


def scene_missed(target: torch.Tensor, predicted: torch.Tensor) -> bool:
    """Whether a predicted mask misses the scene (see the module's docstring)."""
    subject = largest_foreground_class(target)
    if subject is None:
        labelled = target != IGNORE
        return bool(labelled.any()) and float((predicted[labelled] == target[labelled]).float().mean()) < 0.5
    pixels = target == subject
    return float((predicted[pixels] == subject).float().mean()) < 0.5


@dataclass
class Predictions:
    """Per sample of the explorer's list: the predicted class (or mask) and whether it is wrong."""

    predicted: list          # int per sample, or a (H, W) tensor per sample for segmentation
    wrong: list[bool]
    num_classes: int
    segmentation: bool

    def misclassified(self, indices: Sequence[int]) -> list[int]:
        """The dataset indices among ``indices`` (the explorer's samples, in the same order) it gets wrong."""
        return [index for index, wrong in zip(indices, self.wrong) if wrong]


@torch.no_grad()
def predict(model: nn.Module, samples: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> Predictions:
    """``model``'s predictions on ``samples`` ((input, target) pairs), in eval mode."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, len(samples), BATCH):
            x = torch.stack([s[0] for s in samples[start:start + BATCH]])
            outputs.append(model(inputs_for(model, x)).float().cpu())
    finally:
        model.train(was_training)
    output = torch.cat(outputs)
    segmentation = output.dim() == 4
    predicted = predicted_labels(output)
    targets = [torch.as_tensor(s[1]) for s in samples]
    if segmentation:
        wrong = [scene_missed(t, p) for t, p in zip(targets, predicted)]
        shown = list(predicted)
    else:
        wrong = [int(p) != int(t) for t, p in zip(targets, predicted)]
        shown = [int(p) for p in predicted]
    return Predictions(shown, wrong, int(output.shape[1]), segmentation)


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` dataset indices spread evenly over ``length`` samples (all of them if there are fewer)."""
    if count >= length:
        return list(range(length))
    return sorted(set(np.linspace(0, length - 1, count).round().astype(int).tolist()))
