"""Training-time augmentation for series that trace a closed outline (UCR Adiac and other shape sets).

An Adiac series is the distance from a diatom's centre to its outline, walked once around it: the
last value meets the first. Two changes leave the shape itself untouched:

- where the walk starts: a circular shift of the series by a few samples;
- which way round it goes: reading the series backwards from the same start point gives the
  mirrored outline, and diatom valves are close to mirror-symmetric.

``OutlineAugment`` wraps a training set and applies both at random to every sample it hands out.
Validation and test sets stay unwrapped. The randomness comes from torch's global generator, which
``dynlab.engine.fit`` seeds, so a run stays reproducible and resumable.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

__all__ = ["AUGMENTATIONS", "OutlineAugment", "with_augmentation"]


class OutlineAugment(Dataset):
    """``dataset`` with each series (channels, length) circularly shifted by up to ``max_shift``
    samples either way and, with probability ``reverse_probability``, walked the other way round."""

    def __init__(self, dataset: Dataset, max_shift: int = 8, reverse_probability: float = 0.5) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        if not 0.0 <= reverse_probability <= 1.0:
            raise ValueError(f"reverse_probability must be in [0, 1], got {reverse_probability}")
        self.dataset = dataset
        self.max_shift = int(max_shift)
        self.reverse_probability = float(reverse_probability)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        series, label = self.dataset[index]
        if series.dim() != 2:
            raise ValueError(f"OutlineAugment expects series of shape (channels, length), got {tuple(series.shape)}")
        if self.reverse_probability > 0 and torch.rand(()) < self.reverse_probability:
            series = torch.roll(series.flip(-1), 1, dims=-1)  # x[t] -> x[-t mod L]: same start, other direction
        if self.max_shift > 0:
            shift = int(torch.randint(-self.max_shift, self.max_shift + 1, ()))
            series = torch.roll(series, shift, dims=-1)
        return series, label

    @property
    def targets(self):
        return self.dataset.targets

    def __repr__(self) -> str:
        return (f"OutlineAugment(max_shift={self.max_shift}, reverse_probability={self.reverse_probability}, "
                f"{len(self)} samples)")


def _mirror(dataset: Dataset) -> OutlineAugment:
    return OutlineAugment(dataset, max_shift=0)


#: names a training profile can give for its augmentation: ``outline`` (shift and mirror), ``mirror`` (mirror only)
AUGMENTATIONS = {"outline": OutlineAugment, "mirror": _mirror}


def with_augmentation(dataset: Dataset, name: str | None) -> Dataset:
    """``dataset`` wrapped in the augmentation called ``name`` (``None``: unchanged)."""
    if name is None:
        return dataset
    try:
        return AUGMENTATIONS[name](dataset)
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; valid ones: {', '.join(AUGMENTATIONS)}") from None
