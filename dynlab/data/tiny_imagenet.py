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

Where a missing copy comes from, first that works: the CS231n zip (checked by its MD5), then the copy
on the Hugging Face hub, one parquet file per split at a pinned revision (checked by the sha256
recorded at its first download). The parquet rows are decoded straight into the same cache arrays,
with the same class order; the folder then holds ``wnids.txt``, the arrays and ``DECODED_MARK``.
"""
from __future__ import annotations

import json
import re
import warnings
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from ..files import atomic_write_text, replacing
from .download import (DataUnavailableError, Mirror, MirrorsFailedError, data_root, extract, fetch,
                       fetch_mirrors, first_available)
from .splits import stratified_split

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ARCHIVE = "tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
NATIVE_SIZE = 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
SPLITS = ("train", "val", "test")
#: the splits stored on disk: official train, and official val (our "test")
STORED = ("train", "test")

NUM_CLASSES = 200
#: images per class in each stored split; a decoded parquet file must hold exactly these
PER_CLASS = {"train": 500, "test": 50}
HF_REVISION = "b427d143d5e9bf39d5132c552063f3c5ba3facd6"
HF_URL = "https://huggingface.co/datasets/zh-plus/tiny-imagenet/resolve/{revision}/{path}"
PARQUET_PATHS = {"train": "data/train-00000-of-00001-1359597a978bc4fa.parquet",
                 "test": "data/valid-00000-of-00001-70d52db3c749a935.parquet"}
#: per stored split, the mirrors of its parquet file, tried in order; no checksum is published, so
#: each file's sha256 is recorded at its first download and checked whenever it is used again
PARQUET_MIRRORS = {split: (Mirror(HF_URL.format(revision=HF_REVISION, path=path)),)
                   for split, path in PARQUET_PATHS.items()}
#: where the parquet files are kept, under the data root
PARQUET_FOLDER = "tiny-imagenet-parquet"
#: written into the data folder once it has been decoded from the parquet files
DECODED_MARK = "dynlab-decoded-from-parquet.txt"
_WNID = re.compile(r"n\d{8}")


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
    """The ``tiny-imagenet-200`` folder, downloaded (and extracted, or decoded) if needed.

    A folder that is there but incomplete (a class without training images, no ``val/``) is an error
    that lists what is missing: it is someone's copy, not a failed download.
    """
    root = Path(root) if root is not None else data_root()
    folder = root / FOLDER
    if (folder / DECODED_MARK).is_file():
        return _decoded_folder(root, folder, download)
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
            f"{root.resolve()} (or extract it there), or {_parquet_by_hand(root / PARQUET_FOLDER)} and allow "
            f"downloads to decode them, or set DYNLAB_DATA to the folder holding {FOLDER}/.")
    return first_available(((URL, lambda: _from_zip(root, folder)),
                             ("the parquet copy on the Hugging Face hub", lambda: _from_parquet(root, folder))),
                            "Tiny ImageNet")


def _from_zip(root: Path, folder: Path) -> Path:
    archive = fetch(URL, ARCHIVE, root, MD5, what="Tiny ImageNet")
    extract(archive, root)
    if not _complete(folder) or _missing(folder):
        raise DataUnavailableError(f"{archive} did not hold the expected {FOLDER}/ layout "
                                   f"(wnids.txt, train/<wnid>/images/, val/val_annotations.txt)")
    return folder


def _cache_paths(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"dynlab-{split}-images.npy", folder / f"dynlab-{split}-labels.npy"


def _decoded_folder(root: Path, folder: Path, download: bool) -> Path:
    """A folder decoded from the parquet files; what it lacks is decoded again from them."""
    missing = [p.name for split in STORED for p in _cache_paths(folder, split) if not p.is_file()]
    missing += [] if (folder / "wnids.txt").is_file() else ["wnids.txt"]
    if not missing:
        return folder
    if not download:
        raise DataUnavailableError(f"{folder} was decoded from the parquet copy but lacks {', '.join(missing)}; "
                                   f"allow downloads to decode it again from {root / PARQUET_FOLDER}")
    return _from_parquet(root, folder)


def _pyarrow_parquet(root: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MirrorsFailedError("Tiny ImageNet (parquet copy)",
                                 [(PARQUET_MIRRORS["train"][0].url, "reading parquet files needs pyarrow: "
                                                                    "pip install pyarrow")],
                                 [_parquet_by_hand(root / PARQUET_FOLDER)]) from None
    return pq


def _parquet_name(split: str) -> str:
    return PurePosixPath(PARQUET_PATHS[split]).name


def _parquet_by_hand(folder: Path) -> str:
    names = " and ".join(_parquet_name(split) for split in STORED)
    return f"fetch {names} from {HF_URL.format(revision=HF_REVISION, path='data/')} into {folder.resolve()}"


def _fetch_parquet(root: Path) -> dict[str, Path]:
    folder = root / PARQUET_FOLDER
    try:
        return {split: fetch_mirrors(PARQUET_MIRRORS[split], _parquet_name(split), folder,
                                     what=f"Tiny ImageNet {split}") for split in STORED}
    except MirrorsFailedError as error:
        raise MirrorsFailedError("Tiny ImageNet (parquet copy)", error.failures,
                                 [_parquet_by_hand(folder)]) from error


def _from_parquet(root: Path, folder: Path) -> Path:
    """Decode the parquet copy into the cache arrays the zip path writes, once both files have passed their
    checks; ``DECODED_MARK`` and ``wnids.txt`` come last."""
    pq = _pyarrow_parquet(root)
    paths = _fetch_parquet(root)
    files = {split: pq.ParquetFile(path) for split, path in paths.items()}
    checked = {split: _checked_labels(files[split], paths[split], split) for split in STORED}
    if checked["train"][1] != checked["test"][1]:
        raise DataError(f"{paths['test']} names other classes than {paths['train']}; move both away (and their "
                        ".sha256) and download them again")
    folder.mkdir(parents=True, exist_ok=True)
    for split, (labels, _) in checked.items():
        images_path, labels_path = _cache_paths(folder, split)
        _save_atomic(images_path, _decode_parquet_images(files[split], paths[split], len(labels)))
        _save_atomic(labels_path, labels)
    atomic_write_text(folder / DECODED_MARK, "".join(f"{split}: {path.name}\n" for split, path in paths.items()))
    atomic_write_text(folder / "wnids.txt", "\n".join(checked["train"][1]) + "\n")
    return folder


def _redo(path: Path) -> str:
    return f"move {path} away (and its .sha256) and download it again"


def _parquet_classes(path: Path, schema) -> list[str]:
    """The wnids in the file's own label order: its label k is the class named k-th in its metadata.

    The Hugging Face copy keeps its label names (the wnids) in the parquet schema's ``huggingface``
    metadata; their order there is the copy's own (for a copy built from the archive it may be the
    unsorted order of ``wnids.txt``), so it is read from the file, never assumed.
    """
    try:
        names = json.loads(schema.metadata[b"huggingface"])["info"]["features"]["label"]["names"]
    except (TypeError, KeyError, ValueError):
        names = None
    if (not isinstance(names, list) or len(names) != NUM_CLASSES or len(set(names)) != len(names)
            or not all(isinstance(n, str) and _WNID.fullmatch(n) for n in names)):
        raise DataError(f"{path} does not name its {NUM_CLASSES} classes by wnid in its metadata, so its labels "
                        f"cannot be matched to Tiny ImageNet's classes; fetch {ARCHIVE} from {URL} instead")
    return names


def _kit_labels(names: list[str]) -> np.ndarray:
    """The one place where a parquet label becomes the kit's: source label k is the wnid ``names[k]``,
    and the kit's label of a wnid is its index among the sorted wnids, as :func:`read_wnids` gives for
    the zip. So both sources give the cache the same class order."""
    kit = {wnid: k for k, wnid in enumerate(sorted(names))}
    return np.array([kit[wnid] for wnid in names], dtype=np.int64)


def _checked_labels(file, path: Path, split: str) -> tuple[np.ndarray, list[str]]:
    """``(kit labels int64 (N,), sorted wnids)`` of one parquet file, checked by its columns, row count and
    per-class count before any image is decoded."""
    if not {"image", "label"} <= set(file.schema_arrow.names):
        raise DataError(f"{path} has no 'image' and 'label' columns: it is not the Tiny ImageNet parquet file; "
                        f"{_redo(path)}")
    names = _parquet_classes(path, file.schema_arrow)
    rows, expected = file.metadata.num_rows, NUM_CLASSES * PER_CLASS[split]
    if rows != expected:
        raise DataError(f"{path} holds {rows:,} images, expected {expected:,} "
                        f"({PER_CLASS[split]} for each of {NUM_CLASSES} classes); {_redo(path)}")
    sources = file.read(columns=["label"]).column("label").to_numpy(zero_copy_only=False)
    if sources.dtype.kind not in "iu" or sources.min() < 0 or sources.max() >= NUM_CLASSES:
        raise DataError(f"{path} holds labels that are not all integers in 0..{NUM_CLASSES - 1}; {_redo(path)}")
    labels = _kit_labels(names)[sources.astype(np.int64)]
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if (counts != PER_CLASS[split]).any():
        raise DataError(f"{path} holds {counts.min()} to {counts.max()} images per class, expected "
                        f"{PER_CLASS[split]} each; {_redo(path)}")
    return labels, sorted(names)


def _decode_parquet_images(file, path: Path, rows: int) -> np.ndarray:
    from tqdm.auto import tqdm

    out = np.empty((rows, NATIVE_SIZE, NATIVE_SIZE, 3), dtype=np.uint8)
    i = 0
    with tqdm(total=rows, desc=f"decoding {path.name}", leave=False) as bar:
        for batch in file.iter_batches(columns=["image"], batch_size=1024):
            for cell in batch.column("image").to_pylist():
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, bytes):
                    raise DataError(f"{path}, row {i}: not a JPEG image as expected; {_redo(path)}")
                out[i] = _to_array(BytesIO(data), f"row {i} of {path}", _redo(path))
                i += 1
            bar.update(batch.num_rows)
    return out


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


def _to_array(source, where, remedy: str = "replace it with a good copy, or delete it") -> np.ndarray:
    """One image (a path or a file object) as uint8 (64, 64, 3); a few Tiny ImageNet images are greyscale."""
    try:
        with Image.open(source) as image:
            image = image.convert("RGB")
            if image.size != (NATIVE_SIZE, NATIVE_SIZE):
                image = image.resize((NATIVE_SIZE, NATIVE_SIZE), Image.BILINEAR)
            return np.asarray(image)
    except OSError as error:
        raise DataError(f"cannot decode {where} ({error}): {remedy}") from None


def _decode(files: list[Path]) -> np.ndarray:
    from tqdm.auto import tqdm

    out = np.empty((len(files), NATIVE_SIZE, NATIVE_SIZE, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(files, desc="decoding Tiny ImageNet", leave=False)):
        out[i] = _to_array(path, path)
    return out


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def load_arrays(split: str, root: str | Path | None = None, *,
                download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 64, 64, 3), labels int64 (N,))`` of ``"train"`` or ``"test"``, cached.

    The cache is ``dynlab-<split>-images.npy`` / ``-labels.npy`` in the data folder; it is rebuilt
    when its labels no longer match the files on disk (a folder decoded from the parquet copy has
    no JPEGs: there the arrays are the data). A read-only data folder only costs the
    cache: the arrays are then decoded in memory each time, with a warning.
    """
    if split not in STORED:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = tiny_imagenet_folder(root, download=download)
    images_path, labels_path = _cache_paths(folder, split)
    if (folder / DECODED_MARK).is_file():  # decoded from the parquet copy: the arrays are the data
        return np.load(images_path, mmap_mode="r"), np.load(labels_path)
    files, labels = image_files(folder, split)
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
