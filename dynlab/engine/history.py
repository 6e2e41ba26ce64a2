"""A run's per-epoch records and what it concluded: ``History``, written as JSON and CSV."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..files import atomic_write_csv, atomic_write_text

RECORD_FIELDS = ("epoch", "train_loss", "train_aux_loss", "train_metric", "val_loss", "val_metric", "lr",
                 "temperature", "seconds")


class History:
    """Per-epoch records of a run (a list of dicts) plus what the run concluded.

    Each record holds ``epoch, train_loss, train_aux_loss, train_metric, val_loss, val_metric, lr,
    temperature, seconds``. ``train_loss`` is the objective that was minimised (task loss + auxiliary
    loss); ``train_aux_loss`` is its auxiliary part. ``lr`` is the learning rate the epoch trained with,
    ``temperature`` the one the validation ran at (None for models without one).
    ``best_epoch`` is 1-based, like ``record["epoch"]``; ``test`` is filled once at the end.
    """

    def __init__(self, task: str, metric: str, records: Iterable[dict] = (), *, best_epoch: int | None = None,
                 best_metric: float | None = None, test: dict | None = None, stopped_early: bool = False,
                 finished: bool = False, config: dict | None = None) -> None:
        self.task = task
        self.metric = metric
        self.records = [dict(r) for r in records]
        self.best_epoch = best_epoch
        self.best_metric = best_metric
        self.test = test
        self.stopped_early = stopped_early
        self.finished = finished
        self.config = dict(config or {})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def __iter__(self):
        return iter(self.records)

    def column(self, name: str) -> list:
        """One field over all epochs, e.g. ``history.column("val_metric")`` for a plot."""
        return [r[name] for r in self.records]

    def __repr__(self) -> str:
        return (f"History(task={self.task!r}, metric={self.metric!r}, epochs={len(self)}, "
                f"best_epoch={self.best_epoch}, best_metric={self.best_metric}, test={self.test})")

    def to_dict(self) -> dict:
        return {
            "task": self.task, "metric": self.metric, "records": self.records, "best_epoch": self.best_epoch,
            "best_metric": self.best_metric, "test": self.test, "stopped_early": self.stopped_early,
            "finished": self.finished, "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        data = dict(data)
        return cls(data.pop("task"), data.pop("metric"), data.pop("records"), **data)

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_json(self, path: str | os.PathLike) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")

    def to_csv(self, path: str | os.PathLike) -> None:
        """The per-epoch records only (the test metrics are in the JSON file)."""
        fields = list(RECORD_FIELDS) + sorted({k for r in self.records for k in r} - set(RECORD_FIELDS))
        atomic_write_csv(path, self.records, fields)


def _json_default(value):
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
