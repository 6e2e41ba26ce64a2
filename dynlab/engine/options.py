"""Every setting of a training run, in one validated object (``FitOptions``), and what they may be."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..data.tasks import TASKS
from ..metrics import IGNORE_INDEX

#: metrics each task reports; the first is the default monitored metric
TASK_METRICS = {
    "classification": ("accuracy", "top5", "loss"),
    "segmentation": ("miou", "pixel_accuracy", "loss"),
    "timeseries": ("accuracy", "top5", "loss"),
}
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("plateau", "cosine", "onecycle")
#: which epoch's weights ``fit`` hands back: the best on validation, or the last one trained
KEEP = ("best", "last")
#: settings that must match for a resumed run to end where the uninterrupted one would
RESUME_KEYS = ("task", "metric", "epochs", "batch_size", "optimizer", "lr_schedule", "seed", "world_size")


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


@dataclass(frozen=True)
class FitOptions:
    """The settings of ``fit``; the defaults are the paper's Table 1 (see ``dynlab.engine.fit``).

    ``metric`` None becomes the task's first metric; ``eval_batch_size`` None the training batch size.
    """

    task: str = "classification"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    metric: str | None = None
    plateau_factor: float = 0.1
    plateau_patience: int | None = 5
    plateau_min_lr: float = 1e-6
    early_stopping_patience: int | None = 10
    lr_schedule: str = "plateau"
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    #: the attention temperature of the units that use one, annealed from the first value to the second
    temperature: tuple[float, float] = (30.0, 1.0)
    precise_batchnorm: bool | None = None
    keep: str = "best"
    ignore_index: int = IGNORE_INDEX
    seed: int = 0
    device: object = None
    out_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False
    num_workers: int = 0
    eval_batch_size: int | None = None

    def __post_init__(self) -> None:
        check_task(self.task)
        metric = self.metric or TASK_METRICS[self.task][0]
        if metric not in TASK_METRICS[self.task]:
            raise ValueError(f"unknown metric {metric!r} for task {self.task!r}; "
                             f"valid metrics: {', '.join(TASK_METRICS[self.task])}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; valid schedules: {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive (or None), got {self.clip_grad_norm}")
        if len(self.temperature) != 2 or not all(t > 0 for t in self.temperature):
            raise ValueError(f"temperature must be two positive numbers (start, end), got {self.temperature}")
        object.__setattr__(self, "temperature", tuple(float(t) for t in self.temperature))
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got epochs={self.epochs}, "
                             f"batch_size={self.batch_size}")
        if self.resume and self.overwrite:
            raise ValueError("resume=True continues the run in out_dir, overwrite=True replaces it: choose one")
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs the out_dir of the run to continue")
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "eval_batch_size", self.eval_batch_size or self.batch_size)
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir))

    @property
    def mode(self) -> str:
        """``"min"`` for the loss, ``"max"`` for every other metric."""
        return "min" if self.metric == "loss" else "max"

    def replace(self, **changes) -> "FitOptions":
        return dataclasses.replace(self, **changes)

    def config(self, **run) -> dict:
        """The run's settings as history and checkpoints record them, with ``run``'s facts after them."""
        names = ("task", "metric", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "plateau_factor",
                 "plateau_patience", "plateau_min_lr", "early_stopping_patience", "lr_schedule", "label_smoothing",
                 "temperature", "precise_batchnorm", "keep", "seed")
        return {**{name: getattr(self, name) for name in names}, **run}
