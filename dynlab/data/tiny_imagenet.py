"""Tiny ImageNet (CS231n): 200 classes of 64x64 images, 500 train and 50 val images per class.

Layout of the extracted archive (under ``data_root()/tiny-imagenet-200/``)::

    wnids.txt                      the 200 class ids, one a line
    words.txt                      class id -> human-readable names (optional here)
    train/<wnid>/images/*.JPEG     500 per class
    val/images/*.JPEG              10,000 images ...
    val/val_annotations.txt        ... and their labels: file <TAB> wnid <TAB> box

The official test images carry no labels, so the official *val* set is our **test** split, and
our validation split is held out of train (stratified, seeded). The JPEGs are decoded once into
a uint8 array (N, 64, 64, 3) saved as ``.npy`` next to the data; later runs memory-map it.
Resizing to 224x224 (the paper's setting) happens per sample, so the cache stays small.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from ..files import replacing
from .download import DataUnavailableError, data_root, extract, fetch
from .splits import stratified_split

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ARCHIVE = "tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
NATIVE_SIZE = 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
SPLITS = ("train", "val", "test")


def _complete(folder: Path) -> bool:
    return ((folder / "wnids.txt").is_file() and (folder / "train").is_dir()
            and (folder / "val" / "val_annotations.txt").is_file())


def _missing(folder: Path) -> list[str]:
    """What a ``tiny-imagenet-200`` folder lacks: files, and the classes with no training images."""
    missing = [name for name in ("wnids.txt", "train", "val/val_annotations.txt", "val/images")
               if not (folder / name).exists()]
    if not missing:
        missing = [f"train/{w}/images/*.JPEG" for w in read_wnids(folder)
                   if not any((folder / "train" / w / "images").glob("*.JPEG"))]
    return missing


def tiny_imagenet_folder(root: str | Path | None = None, *, download: bool = True) -> Path:
    """The extracted ``tiny-imagenet-200`` folder, downloading and extracting it if needed.

    A folder that is there but incomplete (a class without training images, no ``val/``) is an error
    that lists what is missing: it is someone's copy, not a failed download.
    """
    root = Path(root) if root is not None else data_root()
    folder = root / FOLDER
    if _complete(folder) or (folder / "wnids.txt").is_file():
        missing = _missing(folder)
        if missing:
            raise DataError(f"{folder} is incomplete: missing {', '.join(missing[:5])}"
                            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}; put the missing "
                            f"parts back, or move the folder away to download it again")
        return folder
    if not download:
        raise DataUnavailableError(
            f"Tiny ImageNet not found in {folder.resolve()}. Download {ARCHIVE} from {URL} into "
            f"{root.resolve()} (or extract it there), or set DYNLAB_DATA to the folder holding {FOLDER}/.")
    archive = fetch(URL, ARCHIVE, root, MD5, what="Tiny ImageNet")
    extract(archive, root)
    if not _complete(folder) or _missing(folder):
        raise DataUnavailableError(f"{archive} did not hold the expected {FOLDER}/ layout "
                                   f"(wnids.txt, train/<wnid>/images/, val/val_annotations.txt)")
    return folder


def read_wnids(folder: Path) -> list[str]:
    """Class ids in sorted order: label k is the k-th of them."""
    return sorted(line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip())


def class_names(folder: Path) -> list[str]:
    """Readable names (first synonym from ``words.txt``), or the ids when it is missing."""
    wnids = read_wnids(folder)
    words = folder / "words.txt"
    if not words.is_file():
        return wnids
    table = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line)
    return [table.get(w, w).split(",")[0].strip() for w in wnids]


def image_files(folder: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """The files and labels of ``"train"`` (official train) or ``"test"`` (official val)."""
    index = {w: k for k, w in enumerate(read_wnids(folder))}
    if split == "train":
        files, labels = [], []
        for wnid, k in index.items():
            found = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
            files += found
            labels += [k] * len(found)
    elif split == "test":
        rows = [line.split("\t") for line in
                (folder / "val" / "val_annotations.txt").read_text().splitlines() if line.strip()]
        rows.sort()
        unknown = {r[1] for r in rows} - index.keys()
        if unknown:
            raise ValueError(f"val_annotations.txt names classes missing from wnids.txt: "
                             f"{sorted(unknown)[:5]}")
        files = [folder / "val" / "images" / r[0] for r in rows]
        labels = [index[r[1]] for r in rows]
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return files, np.asarray(labels, dtype=np.int64)


def _decode(files: list[Path]) -> np.ndarray:
    from tqdm.auto import tqdm

    out = np.empty((len(files), NATIVE_SIZE, NATIVE_SIZE, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(files, desc="decoding Tiny ImageNet", leave=False)):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")  # a few Tiny ImageNet images are greyscale
                if image.size != (NATIVE_SIZE, NATIVE_SIZE):
                    image = image.resize((NATIVE_SIZE, NATIVE_SIZE), Image.BILINEAR)
                out[i] = np.asarray(image)
        except OSError as error:
            raise DataError(f"cannot decode {path} ({error}): replace it with a good copy, or delete it") from None
    return out


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def load_arrays(split: str, root: str | Path | None = None, *,
                download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 64, 64, 3), labels int64 (N,))`` of ``"train"`` or ``"test"``, cached.

    The cache is ``dynlab-<split>-images.npy`` / ``-labels.npy`` in the data folder; it is rebuilt
    when its labels no longer match the files on disk. A read-only data folder only costs the
    cache: the arrays are then decoded in memory each time, with a warning.
    """
    folder = tiny_imagenet_folder(root, download=download)
    files, labels = image_files(folder, split)
    images_path = folder / f"dynlab-{split}-images.npy"
    labels_path = folder / f"dynlab-{split}-labels.npy"
    if images_path.is_file() and labels_path.is_file():
        if np.array_equal(np.load(labels_path), labels):
            return np.load(images_path, mmap_mode="r"), labels
    images = _decode(files)
    try:
        _save_atomic(images_path, images)
        _save_atomic(labels_path, labels)
    except OSError as err:
        warnings.warn(f"could not cache decoded Tiny ImageNet in {folder}: {err}", stacklevel=2)
    return images, labels


def _cap_per_class(indices: np.ndarray, labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """At most ``cap`` indices per class, a seeded choice."""
    if cap is None:
        return indices
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(indices[labels[indices] == c])[:cap] for c in np.unique(labels[indices])]
    return np.sort(np.concatenate(kept))


class TinyImageNet(Dataset):
    """Tiny ImageNet as ``(float tensor (3, S, S) normalised with ImageNet statistics, int64 label)``.

    ``split``: ``"train"`` / ``"val"`` (``val_fraction`` of train, held out per class with
    ``seed``) / ``"test"`` (the official val set). ``image_size`` 224 reproduces the seed;
    ``max_per_class`` keeps a seeded subset for quick runs; ``augment`` adds a random horizontal
    flip and a random crop (4-pixel reflect padding at 64x64) before the resize.
    """

    def __init__(self, split: str = "train", *, root: str | Path | None = None, image_size: int = 64,
                 val_fraction: float = 0.1, seed: int = 0, max_per_class: int | None = None,
                 augment: bool = False, download: bool = True) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        images, labels = load_arrays("test" if split == "test" else "train", root, download=download)
        indices = np.arange(len(labels))
        if split != "test":
            kept, held = stratified_split(labels, val_fraction, seed)
            indices = kept if split == "train" else held
        self.indices = _cap_per_class(indices, labels, max_per_class, seed)
        self.images, self.all_labels = images, labels
        self.image_size, self.augment = image_size, augment
        folder = tiny_imagenet_folder(root, download=False)
        self.class_names = class_names(folder)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> np.ndarray:
        return self.all_labels[self.indices]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.indices[i]
        x = torch.from_numpy(np.array(self.images[j])).permute(2, 0, 1).float().div_(255)
        if self.augment:
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            padded = F.pad(x[None], (4, 4, 4, 4), mode="reflect")[0]
            top, left = torch.randint(0, 9, (2,)).tolist()
            x = padded[:, top:top + NATIVE_SIZE, left:left + NATIVE_SIZE]
        if self.image_size != NATIVE_SIZE:
            x = F.interpolate(x[None], size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        return (x - MEAN) / STD, torch.tensor(self.all_labels[j], dtype=torch.int64)
