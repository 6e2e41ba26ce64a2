"""Pascal VOC 2012 semantic segmentation through torchvision's ``VOCSegmentation``.

21 classes (background + 20 objects); mask value 255 marks object borders and padding and is
ignored by the loss and the mIoU. VOC's segmentation ``train`` list (1,464 images) gives our
train and validation splits (a seeded hold-out); VOC's ``val`` list (1,449 images) is our test
split, since the official test masks are not public. (The paper's "11,530 samples" is the
*detection* trainval count.)

The data live in ``data_root()/VOCdevkit/VOC2012/``; a missing copy of the 2012 trainval tar is
fetched from torchvision's URL, or else from the copies in ``COPIES``, each checked against
torchvision's MD5, through :mod:`dynlab.data.download` (checksum, atomic rename, safe extraction).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset
from torchvision.datasets import VOCSegmentation as _TorchvisionVOC
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.transforms import InterpolationMode

from ..errors import DataError
from .download import DataUnavailableError, Mirror, data_root, extract, fetch_mirrors

VOC2012 = DATASET_YEAR_DICT["2012"]  # url, filename, md5, base_dir ("VOCdevkit/VOC2012")
#: other hosts of the same tar, tried in order after torchvision's URL (the d2l project keeps this one)
COPIES = ("http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",)
NUM_CLASSES = 21
IGNORE_INDEX = 255
CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
SPLITS = ("train", "val", "test")


def _complete(voc: Path) -> bool:
    lists = voc / "ImageSets" / "Segmentation"
    return ((lists / "train.txt").is_file() and (lists / "val.txt").is_file()
            and (voc / "JPEGImages").is_dir() and (voc / "SegmentationClass").is_dir())


def _mirrors() -> tuple[Mirror, ...]:
    """torchvision's URL, then ``COPIES``: every copy must have torchvision's MD5."""
    return tuple(Mirror(url, md5=VOC2012["md5"]) for url in (VOC2012["url"], *COPIES))


def voc_root(root: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder holding ``VOCdevkit/VOC2012`` (what torchvision calls ``root``), fetched if needed."""
    root = Path(root) if root is not None else data_root()
    voc = root / VOC2012["base_dir"]
    if _complete(voc):
        return root
    if not download:
        raise DataUnavailableError(
            f"Pascal VOC 2012 not found in {voc.resolve()}. Download {VOC2012['filename']} from "
            f"{' or '.join(m.url for m in _mirrors())} into {root.resolve()} (or extract it there), or set "
            f"DYNLAB_DATA to the folder holding VOCdevkit/.")
    archive = fetch_mirrors(_mirrors(), VOC2012["filename"], root, what="Pascal VOC 2012")
    extract(archive, root)
    if not _complete(voc):
        raise DataUnavailableError(f"{archive} did not hold the expected {VOC2012['base_dir']}/ layout")
    return root


def _to_tensors(image, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL image and palette mask -> float (3, H, W) in [0, 1] and int64 (H, W) class indices."""
    x = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div_(255)
    y = torch.from_numpy(np.array(mask, dtype=np.int64))
    return x, y


def _resize(x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    x = TF.resize(x, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
    y = TF.resize(y[None], list(size), interpolation=InterpolationMode.NEAREST)[0]
    return x, y


class TrainTransform:
    """Random scale, random crop (padding the mask with 255), random horizontal flip.

    The scale is relative to the size at which the shorter side equals ``crop_size``, so that
    ``scale_range=(0.5, 2.0)`` means the same thing for any crop size.
    """

    def __init__(self, crop_size: int, scale_range: tuple[float, float] = (0.5, 2.0)) -> None:
        self.crop_size, self.scale_range = crop_size, scale_range

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _to_tensors(image, mask)
        low, high = self.scale_range
        scale = (low + (high - low) * torch.rand(()).item()) * self.crop_size / min(x.shape[1:])
        x, y = _resize(x, y, (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[2] * scale))))
        x = (x - MEAN) / STD                       # padding with 0 below is padding with the mean
        c = self.crop_size
        pad_h, pad_w = max(0, c - x.shape[1]), max(0, c - x.shape[2])
        if pad_h or pad_w:
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), value=0.0)
            y = torch.nn.functional.pad(y, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = torch.randint(0, x.shape[1] - c + 1, ()).item()
        left = torch.randint(0, x.shape[2] - c + 1, ()).item()
        x, y = x[:, top:top + c, left:left + c], y[top:top + c, left:left + c]
        if torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        return x.contiguous(), y.contiguous()


class EvalTransform:
    """Deterministic: shorter side resized to ``crop_size``, then the centre square."""

    def __init__(self, crop_size: int) -> None:
        self.crop_size = crop_size

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _to_tensors(image, mask)
        c = self.crop_size
        scale = c / min(x.shape[1:])
        x, y = _resize(x, y, (max(c, round(x.shape[1] * scale)), max(c, round(x.shape[2] * scale))))
        top, left = (x.shape[1] - c) // 2, (x.shape[2] - c) // 2
        x, y = x[:, top:top + c, left:left + c], y[top:top + c, left:left + c]
        return ((x - MEAN) / STD).contiguous(), y.contiguous()


class VOCSegmentation(Dataset):
    """VOC 2012 segmentation as ``(float tensor (3, c, c), int64 mask (c, c) with 255 = ignore)``.

    ``split``: ``"train"`` / ``"val"`` (``val_fraction`` of VOC train, seeded) / ``"test"`` (VOC
    val). ``augment`` defaults to True for ``"train"`` only; other splits use
    :class:`EvalTransform`.
    """

    def __init__(self, split: str = "train", *, root: str | Path | None = None, crop_size: int = 224,
                 val_fraction: float = 0.1, seed: int = 0, augment: bool | None = None,
                 scale_range: tuple[float, float] = (0.5, 2.0), download: bool = True) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        root = voc_root(root, download=download)
        self.voc = _TorchvisionVOC(str(root), year="2012", image_set="val" if split == "test" else "train")
        unpaired = [path for pair in zip(self.voc.images, self.voc.masks) for path in pair if not Path(path).is_file()]
        if unpaired:
            raise DataError(f"VOC's {'val' if split == 'test' else 'train'} list names {len(unpaired)} file(s) that "
                            f"are not there, e.g. {unpaired[0]}: every listed image needs its JPEG and its "
                            "SegmentationClass mask; put them back, or move VOCdevkit/ away to download it again")
        n = len(self.voc)
        if split == "test":
            self.indices = np.arange(n)
        else:
            order = np.random.default_rng(seed).permutation(n)
            held = int(round(val_fraction * n))
            self.indices = np.sort(order[:held] if split == "val" else order[held:])
        augment = split == "train" if augment is None else augment
        self.transform = TrainTransform(crop_size, scale_range) if augment else EvalTransform(crop_size)
        self.crop_size = crop_size
        self.num_classes = NUM_CLASSES
        self.class_names = list(CLASS_NAMES)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.voc[int(self.indices[i])]
        return self.transform(image, mask)
