"""The training engine: ``fit``, ``evaluate``, checkpoints and a per-epoch history.

The defaults are the seed's Table 1: Adam, lr 1e-3, batch 32, 30 epochs, cross-entropy,
ReduceLROnPlateau (factor 0.1, patience 5, min 1e-6) and early stopping (patience 10) on a validation
split held out of the training data; the best epoch (by the validation metric) is restored before the
test split is evaluated, once, at the end.

The engine knows a variant only through ``dynlab.layers``: models whose units use a temperature are
annealed 30 -> 1 per iteration (``TemperatureSchedule.for_run``), and ``auxiliary_loss(model)`` (e.g.
the ``hard`` gates' budget) is added to the task loss at every step.

The same ``fit`` runs on one process or under ``torchrun`` (DistributedDataParallel): it reads
RANK/WORLD_SIZE from the environment, shards the data, sums metric counts across processes, and only
rank 0 writes files or shows progress bars. ``python -m dynlab.train --smoke OUT_DIR`` trains a tiny
model on synthetic data, alone or under ``torchrun``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset, TensorDataset
from tqdm.auto import tqdm

from . import layers
from .allocator import keep_freed_memory
from .device import autocast, describe, grad_scaler, pick_device, prepare_input, prepare_model
from .metrics import IGNORE_INDEX, ConfusionMatrix

TASKS = ("classification", "segmentation", "timeseries")
#: metrics each task reports; the first is the default monitored metric
TASK_METRICS = {
    "classification": ("accuracy", "top5", "loss"),
    "segmentation": ("miou", "pixel_accuracy", "loss"),
    "timeseries": ("accuracy", "top5", "loss"),
}
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("plateau", "cosine")
RECORD_FIELDS = ("epoch", "train_loss", "train_aux_loss", "train_metric", "val_loss", "val_metric", "lr",
                 "temperature", "seconds")
CHECKPOINT_FORMAT = 1


# -- history ------------------------------------------------------------------------------------
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
        path = Path(path)
        fields = list(RECORD_FIELDS) + sorted({k for r in self.records for k in r} - set(RECORD_FIELDS))
        tmp = _temporary_path(path)
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.records)
        os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass
class EpochEnd:
    """What a callback receives after each epoch (after that epoch's checkpoint is written).

    Set ``stop = True`` to end training after this epoch. Callbacks run on every process under
    ``torchrun``; one that writes files should check ``is_main``.
    """

    epoch: int
    record: dict
    history: History
    model: nn.Module
    optimizer: torch.optim.Optimizer
    out_dir: Path | None
    rank: int = 0
    stop: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


Callback = Callable[[EpochEnd], Any]


# -- distributed ---------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(requested_device) -> tuple[_Dist, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return _Dist(), pick_device(requested_device)
    device = pick_device(requested_device)  # under torchrun "cuda" means cuda:LOCAL_RANK
    created = False
    if not torch_dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return _Dist(torch_dist.get_rank(), torch_dist.get_world_size(), created), device


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's BatchNorm statistics.

    DDP copies them from rank 0 at the start of each training forward, so after the last step each
    process still holds its own update; evaluation and the saved checkpoint must use the same ones.
    """
    for buffer in model.buffers():
        torch_dist.broadcast(buffer, src=0)


def _current_dist() -> _Dist:
    if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        return _Dist(torch_dist.get_rank(), torch_dist.get_world_size())
    return _Dist()


# -- metric accumulation --------------------------------------------------------------------------
class _Meter:
    """Sums over batches (and, with ``reduce``, over processes): loss, counts, correct, confusion matrix.

    Sums rather than per-batch means, so that the result is exact whatever the batch sizes and however
    the data is split across processes.
    """

    def __init__(self, task: str, ignore_index: int, device: torch.device) -> None:
        self.task = task
        self.ignore_index = ignore_index
        self.device = device
        # loss_sum, loss_count (samples or counted pixels), aux_sum, samples, top1, top5
        self.sums = torch.zeros(6, dtype=torch.float64, device=device)
        self.confusion: ConfusionMatrix | None = None
        self.num_classes: int | None = None

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor, loss_count,
               aux: torch.Tensor | float = 0.0) -> None:
        logits = logits.detach().float()
        batch = targets.shape[0]
        self.num_classes = logits.shape[1]
        s = self.sums
        s[0] += loss_sum.detach().double()
        s[1] += loss_count
        s[2] += (aux.detach().double() if torch.is_tensor(aux) else float(aux)) * batch
        s[3] += batch
        if self.task == "segmentation":
            if self.confusion is None:
                self.confusion = ConfusionMatrix(self.num_classes, self.ignore_index, device=self.device)
            self.confusion.update(logits, targets)
        else:
            top = logits.topk(min(5, self.num_classes), dim=1).indices
            hits = top == targets.reshape(-1, 1)
            s[4] += hits[:, 0].sum()
            s[5] += hits.any(dim=1).sum()

    def reduce(self, dist: _Dist) -> None:
        if not dist.active:
            return
        torch_dist.all_reduce(self.sums)
        if self.task == "segmentation":
            # a process that saw no batch has no matrix yet: agree on the class count first
            classes = torch.tensor([self.num_classes or 0], device=self.device)
            torch_dist.all_reduce(classes, op=torch_dist.ReduceOp.MAX)
            if self.confusion is None:
                self.confusion = ConfusionMatrix(int(classes), self.ignore_index, device=self.device)
            torch_dist.all_reduce(self.confusion.matrix)
        else:
            classes = torch.tensor([self.num_classes or 0], device=self.device)
            torch_dist.all_reduce(classes, op=torch_dist.ReduceOp.MAX)
            self.num_classes = int(classes)

    def results(self) -> dict[str, float]:
        loss_sum, loss_count, aux_sum, samples, top1, top5 = self.sums.tolist()
        out = {"loss": loss_sum / loss_count if loss_count else float("nan")}
        if aux_sum:
            out["aux_loss"] = aux_sum / samples
        if self.task == "segmentation":
            out["miou"] = self.confusion.miou() if self.confusion is not None else float("nan")
            out["pixel_accuracy"] = self.confusion.pixel_accuracy() if self.confusion is not None else float("nan")
        else:
            out["accuracy"] = top1 / samples if samples else float("nan")
            if (self.num_classes or 0) >= 5:
                out["top5"] = top5 / samples if samples else float("nan")
        return out


def _logits(output) -> torch.Tensor:
    """Models return logits; torchvision's segmentation models return ``{"out": logits, ...}``."""
    return output["out"] if isinstance(output, dict) else output


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


# -- evaluation ------------------------------------------------------------------------------------
def _shard(dataset: Dataset, dist: _Dist) -> Dataset:
    """Every ``world_size``-th sample for this rank: no padding, so summed counts are exact."""
    if not dist.active:
        return dataset
    return Subset(dataset, range(dist.rank, len(dataset), dist.world_size))


@torch.no_grad()
def _run_evaluation(model: nn.Module, loader: DataLoader, task: str, ignore_index: int, device: torch.device,
                    dist: _Dist) -> dict[str, float]:
    was_training = model.training
    model.eval()
    meter = _Meter(task, ignore_index, device)
    try:
        for x, y in loader:
            x, y = prepare_input(x, device), y.to(device)
            with autocast(device):
                logits = _logits(model(x))
            loss = nn.functional.cross_entropy(logits.float(), y, ignore_index=ignore_index, reduction="sum")
            count = (y != ignore_index).sum() if task == "segmentation" else y.shape[0]
            meter.update(logits, y, loss, count)
    finally:
        model.train(was_training)
    meter.reduce(dist)
    return meter.results()


def evaluate(model: nn.Module, dataset: Dataset, task: str = "classification", *, batch_size: int = 64,
             device: str | torch.device | None = None, ignore_index: int = IGNORE_INDEX,
             num_workers: int = 0) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``dataset``, in evaluation mode at the model's current temperature.

    Classification and time series: ``loss``, ``accuracy`` and ``top5`` (with at least 5 classes).
    Segmentation: ``loss`` (per counted pixel), ``miou`` and ``pixel_accuracy``; ``ignore_index``
    pixels are left out. The model is moved to ``device`` (picked automatically when None). Under an
    initialised process group each process evaluates its share and the counts are summed.
    """
    _check_task(task)
    device = pick_device(device)
    dist = _current_dist()
    prepare_model(model, device)
    loader = DataLoader(_shard(dataset, dist), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    return _run_evaluation(model, loader, task, ignore_index, device, dist)


# -- checkpoints ---------------------------------------------------------------------------------
class CheckpointMismatchError(ValueError):
    """A checkpoint was written for another model (variant, width or class count)."""


def model_fingerprint(model: nn.Module) -> dict:
    """What identifies a model's shape: class name, variant (when the model has one), parameter shapes."""
    model = _unwrap(model)
    return {
        "model": type(model).__name__,
        "variant": getattr(model, "variant", None),
        "parameters": [[name, list(p.shape)] for name, p in model.named_parameters()],
    }


def _describe_fingerprint(fp: dict) -> str:
    variant = f" (variant {fp['variant']!r})" if fp.get("variant") else ""
    values = sum(math.prod(shape) for _, shape in fp["parameters"])
    return f"{fp['model']}{variant}, {len(fp['parameters'])} parameter tensors, {values:,} values"


def check_fingerprint(saved: dict, model: nn.Module, path: str | os.PathLike) -> None:
    """Raise ``CheckpointMismatchError`` naming both models if ``saved`` does not describe ``model``."""
    current = model_fingerprint(model)
    if saved == current:
        return
    difference = ""
    saved_shapes = {n: tuple(s) for n, s in saved["parameters"]}
    current_shapes = {n: tuple(s) for n, s in current["parameters"]}
    for name in list(saved_shapes) + [n for n in current_shapes if n not in saved_shapes]:
        if saved_shapes.get(name) != current_shapes.get(name):
            difference = (f"\n  first difference: parameter {name!r} is "
                          f"{list(saved_shapes[name]) if name in saved_shapes else 'absent'} in the checkpoint and "
                          f"{list(current_shapes[name]) if name in current_shapes else 'absent'} here")
            break
    raise CheckpointMismatchError(
        f"checkpoint {path} was written for a different model:\n"
        f"  checkpoint: {_describe_fingerprint(saved)}\n"
        f"  this model: {_describe_fingerprint(current)}{difference}\n"
        "Build the same model to resume or load it, or use another output folder for a new model."
    )


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """Read a checkpoint written by ``fit`` (``best.pt`` or ``last.pt``), safely (``weights_only=True``).

    With ``model``, check that the checkpoint was written for this model and load its weights, and the
    attention temperature its epoch was validated at (``best.pt`` of a model with a temperature schedule:
    weights of an early epoch behave as validated only at that epoch's temperature).
    """
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if model is not None:
        check_fingerprint(checkpoint["fingerprint"], model, path)
        _unwrap(model).load_state_dict(checkpoint["model"])
        if checkpoint.get("temperature") is not None:
            layers.set_temperature(_unwrap(model), checkpoint["temperature"])
    return checkpoint


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = _temporary_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = _temporary_path(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    """This process's random generators as tensors and plain types (loadable with weights_only=True)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: torch seeds itself and ``random`` per worker; numpy needs this."""
    np.random.seed(torch.initial_seed() % 2 ** 32)


# -- fit -------------------------------------------------------------------------------------------
@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable, device: torch.device | None = None) -> int:
    """"Precise BN": recompute every BatchNorm's running statistics with the model's current weights.

    One pass over ``loader`` in training mode without gradients, each BatchNorm averaging its batch
    statistics over the whole pass (instead of the exponential average of training, which trails the
    weights). Returns how many BatchNorm layers were recomputed. ``fit`` calls it before every
    evaluation for models with ``dynlab.layers.needs_precise_batchnorm``.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    device = device or next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass
    model.train()
    try:
        for batch in loader:
            with autocast(device):
                model(prepare_input(batch[0], device))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes.items():
            module.training = training
    return len(norms)


def make_optimizer(name: str, parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer ``fit`` trains with (``name``: one of ``OPTIMIZERS``).

    Adam and AdamW use PyTorch's fused kernels where every parameter is a float tensor on the CPU or a
    CUDA GPU: one pass over the parameters and their two moment buffers instead of several. The
    optimizer step costs in proportion to the parameters, not the MACs, and the variants with K kernels
    (``dyconv``, ``odconv4x``, ``local``) hold about 4 times ``base``'s parameters.
    """
    parameters = list(parameters)
    fused = bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")


def _check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    existing = [name for name in ("last.pt", "best.pt", "history.json") if (out_dir / name).exists()]
    if existing and not resume and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a training run ({', '.join(existing)}); nothing was changed. "
            "Pass resume=True to continue (or reload) it, overwrite=True to replace it, or choose another out_dir."
        )


# settings that must match for a resumed run to end where the uninterrupted one would
_RESUME_KEYS = ("task", "metric", "epochs", "batch_size", "optimizer", "lr_schedule", "seed", "world_size")
#: which epoch's weights ``fit`` hands back: the best on validation, or the last one trained
KEEP = ("best", "last")


def _better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    test_set: Dataset | None = None,
    *,
    task: str = "classification",
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    metric: str | None = None,
    plateau_factor: float = 0.1,
    plateau_patience: int | None = 5,
    plateau_min_lr: float = 1e-6,
    early_stopping_patience: int | None = 10,
    lr_schedule: str = "plateau",
    label_smoothing: float = 0.0,
    precise_batchnorm: bool | None = None,
    keep: str = "best",
    ignore_index: int = IGNORE_INDEX,
    seed: int = 0,
    device: str | torch.device | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    num_workers: int = 0,
    eval_batch_size: int | None = None,
    callbacks: Sequence[Callback] | None = None,
) -> History:
    """Train ``model`` on ``train_set``, select the best epoch on ``val_set``, test it once on ``test_set``.

    ``metric`` is the validation metric that picks the best epoch and drives ReduceLROnPlateau and
    early stopping (default: accuracy, or miou for segmentation; ``"loss"`` is minimised). Pass
    ``plateau_patience=None`` / ``early_stopping_patience=None`` to switch them off.

    ``lr_schedule``: ``"plateau"`` (ReduceLROnPlateau on the validation metric, the seed's) or
    ``"cosine"`` (cosine decay from ``lr`` to 0 over all training steps; the plateau settings are then
    unused). ``label_smoothing`` goes to the cross-entropy of the training loss.

    ``precise_batchnorm``: recompute the BatchNorm statistics over the training set before every
    evaluation (``recalibrate_batchnorm``); None switches it on for models that need it
    (``dynlab.layers.needs_precise_batchnorm``: ODConv).

    At the end the model holds the weights of the best epoch (and stays on the training device).
    ``keep="last"`` keeps the last epoch instead: for a final run on all the training data (the validation
    set then only monitors it, e.g. a validation split now trained on), with settings chosen beforehand on a
    held-out split. ``best.pt`` then holds the last epoch, and ``best_epoch`` is the last one.

    ``out_dir``: where ``last.pt`` (everything needed to resume), ``best.pt`` (best weights),
    ``history.json`` and ``history.csv`` go, updated after every epoch. An ``out_dir`` that already
    holds a run is refused unless ``resume=True`` (continue it; a finished run is reloaded as it is;
    with no checkpoint yet the run starts fresh) or ``overwrite=True``. Resuming needs the same model
    and settings and ends exactly where the uninterrupted run would on the CPU.

    Reproducible on the CPU for a given ``seed`` (torch, numpy, random and the data order are seeded;
    the model's initial weights are the caller's). Under torchrun, resuming reads ``out_dir`` on every
    process, so it must be on a shared file system.
    """
    _check_task(task)
    metric = metric or TASK_METRICS[task][0]
    if metric not in TASK_METRICS[task]:
        raise ValueError(f"unknown metric {metric!r} for task {task!r}; valid metrics: {', '.join(TASK_METRICS[task])}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; valid schedules: {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got epochs={epochs}, batch_size={batch_size}")
    if resume and overwrite:
        raise ValueError("resume=True continues the run in out_dir, overwrite=True replaces it: choose one")
    if resume and out_dir is None:
        raise ValueError("resume=True needs the out_dir of the run to continue")
    if val_set is None or len(val_set) == 0:
        raise ValueError("fit needs a non-empty validation set (hold one out of the training data)")
    mode = "min" if metric == "loss" else "max"
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        _check_out_dir(out_dir, resume, overwrite)

    dist, device = _setup_distributed(device)
    try:
        history = _fit(
            model, train_set, val_set, test_set, dist=dist, device=device, task=task, epochs=epochs,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer_name=optimizer, metric=metric,
            mode=mode, plateau_factor=plateau_factor, plateau_patience=plateau_patience,
            plateau_min_lr=plateau_min_lr, early_stopping_patience=early_stopping_patience,
            lr_schedule=lr_schedule, label_smoothing=label_smoothing,
            precise_batchnorm=layers.needs_precise_batchnorm(model) if precise_batchnorm is None else precise_batchnorm,
            keep=keep, ignore_index=ignore_index, seed=seed,
            out_dir=out_dir, resume=resume, quiet=quiet,
            num_workers=num_workers, eval_batch_size=eval_batch_size or batch_size, callbacks=list(callbacks or ()),
        )
        if dist.created_group:  # every process is done with the group before any tears it down (gloo aborts)
            torch_dist.barrier()
        return history
    finally:
        if dist.created_group:
            torch_dist.destroy_process_group()


def _fit(model, train_set, val_set, test_set, *, dist: _Dist, device: torch.device, task, epochs, batch_size, lr,
         weight_decay, optimizer_name, metric, mode, plateau_factor, plateau_patience, plateau_min_lr,
         early_stopping_patience, lr_schedule, label_smoothing, precise_batchnorm, keep, ignore_index, seed, out_dir,
         resume, quiet, num_workers, eval_batch_size, callbacks) -> History:
    config = {
        "task": task, "metric": metric, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "optimizer": optimizer_name, "plateau_factor": plateau_factor,
        "plateau_patience": plateau_patience, "plateau_min_lr": plateau_min_lr,
        "early_stopping_patience": early_stopping_patience, "lr_schedule": lr_schedule,
        "label_smoothing": label_smoothing, "precise_batchnorm": precise_batchnorm, "keep": keep, "seed": seed,
        "world_size": dist.world_size,
        "device": describe(device), "model": type(model).__name__, "variant": getattr(model, "variant", None),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    last_path = best_path = None
    if out_dir is not None:
        last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)

    _seed_everything(seed + dist.rank)  # each process its own dropout masks; the data order is seeded apart
    keep_freed_memory()  # every step reuses the last one's memory instead of faulting in fresh pages
    model = prepare_model(model, device)
    fingerprint = model_fingerprint(model)
    net = model
    if dist.active:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    optimizer = make_optimizer(optimizer_name, model.parameters(), lr, weight_decay)
    scaler = grad_scaler(device)
    loss_fn = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing)

    # Training data: the order depends only on (seed, epoch), so a resumed run sees the same batches.
    generator = torch.Generator()
    if dist.active:
        sampler = DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed)
    else:
        sampler = RandomSampler(train_set, generator=generator)
    # A last batch of one sample breaks BatchNorm after global pooling (ODConv, DeepLab's ASPP): drop only that.
    drop_last = len(sampler) % batch_size == 1 and len(sampler) > 1
    pin = device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                              num_workers=num_workers, pin_memory=pin, generator=generator,
                              worker_init_fn=_seed_worker)
    val_loader = DataLoader(_shard(val_set, dist), batch_size=eval_batch_size, num_workers=num_workers, pin_memory=pin)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training set is empty")
    schedule = layers.TemperatureSchedule.for_run(epochs, steps_per_epoch) if layers.uses_temperature(model) else None
    scheduler, step_scheduler = None, None  # step_scheduler: stepped after every batch rather than every epoch
    if lr_schedule == "cosine":
        scheduler = step_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    elif plateau_patience is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=plateau_factor, patience=plateau_patience, min_lr=plateau_min_lr)

    history = History(task, metric, config=config)
    start_epoch, step, best_state, best_temperature, bad_epochs = 0, 0, None, None, 0
    if resume and last_path.exists():
        checkpoint = load_checkpoint(last_path)
        check_fingerprint(checkpoint["fingerprint"], model, last_path)
        changed = [k for k in _RESUME_KEYS if checkpoint["config"].get(k) != config[k]]
        if changed:
            details = ", ".join(f"{k}: {checkpoint['config'].get(k)!r} -> {config[k]!r}" for k in changed)
            raise ValueError(f"cannot resume {last_path} with different settings ({details}); "
                             "use the run's settings or another out_dir")
        history = History.from_dict(checkpoint["history"])
        if checkpoint["finished"]:  # nothing left to train: hand back the run with its best weights
            if best_path.exists():
                load_checkpoint(best_path, model)
            else:
                model.load_state_dict(checkpoint["model"])
            return history
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint["scheduler"] is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch, step, bad_epochs = checkpoint["epoch"], checkpoint["step"], checkpoint["bad_epochs"]
        rng = checkpoint["rng"]
        _set_rng_state(rng[dist.rank] if len(rng) == dist.world_size else rng[0])
        if best_path.exists():
            best = load_checkpoint(best_path)
            best_state, best_temperature = best["model"], best.get("temperature")

    def save_last(finished: bool, model_state: dict | None = None) -> None:
        """Write last.pt and the history files (rank 0), with every process's random state."""
        if last_path is None:
            return
        states = [_rng_state()]
        if dist.active:
            states = [None] * dist.world_size
            torch_dist.all_gather_object(states, _rng_state())
        if not dist.is_main:
            return
        _atomic_save({
            "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "model": model_state or model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
            "scaler": scaler.state_dict(), "epoch": len(history), "step": step, "rng": states,
            "history": history.to_dict(), "bad_epochs": bad_epochs, "finished": finished, "config": config,
        }, last_path)
        history.to_json(out_dir / "history.json")
        history.to_csv(out_dir / "history.csv")

    for epoch in range(start_epoch + 1, epochs + 1):
        started = time.perf_counter()
        if dist.active:
            sampler.set_epoch(epoch)
        else:
            generator.manual_seed(seed * 1_000_003 + epoch)
        net.train()
        meter = _Meter(task, ignore_index, device)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=quiet or not dist.is_main, leave=True, dynamic_ncols=True)
        for x, y in train_loader:
            if schedule is not None:
                layers.set_temperature(model, schedule(step))
            x, y = prepare_input(x, device), y.to(device, non_blocking=pin)
            with autocast(device):
                logits = _logits(net(x))
                task_loss = loss_fn(logits.float(), y)
                aux = layers.auxiliary_loss(model)
                loss = task_loss + aux
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if step_scheduler is not None:
                step_scheduler.step()
            step += 1
            count = (y != ignore_index).sum() if task == "segmentation" else y.shape[0]
            meter.update(logits, y, task_loss.detach() * count, count, aux)
            bar.update()
            if bar.n % 10 == 0 or bar.n == steps_per_epoch:
                running = meter.results()
                bar.set_postfix(loss=f"{running['loss'] + running.get('aux_loss', 0.0):.4f}",
                                **({metric: f"{running[metric]:.4f}"} if metric != "loss" else {}))
        meter.reduce(dist)
        train = meter.results()
        if dist.active:
            _broadcast_buffers(model)

        temperature = None
        if schedule is not None:  # where the schedule stands after this epoch's last step
            temperature = schedule(step)
            layers.set_temperature(model, temperature)
        if precise_batchnorm:
            recalibrate_batchnorm(net, train_loader, device)
        val = _run_evaluation(model, val_loader, task, ignore_index, device, dist)
        if metric not in val:
            raise ValueError(f"metric {metric!r} is not available for this task and model; got {sorted(val)}")
        lr_used = optimizer.param_groups[0]["lr"]
        if scheduler is not None and step_scheduler is None and not math.isnan(val[metric]):
            scheduler.step(val[metric])
        record = {
            "epoch": epoch,
            "train_loss": train["loss"] + train.get("aux_loss", 0.0),
            "train_aux_loss": train.get("aux_loss", 0.0),
            "train_metric": train[metric] if metric != "loss" else train["loss"],
            "val_loss": val["loss"],
            "val_metric": val[metric],
            "lr": lr_used,
            "temperature": temperature,
            "seconds": time.perf_counter() - started,
        }
        history.records.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_loss=f"{val['loss']:.4f}",
                        **{f"val_{metric}": f"{val[metric]:.4f}"})
        bar.close()

        if keep == "last" or _better(val[metric], history.best_metric, mode):
            history.best_metric, history.best_epoch, bad_epochs = val[metric], epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best_temperature = temperature
            if best_path is not None and dist.is_main:
                _atomic_save({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "model": best_state,
                              "epoch": epoch, "metric": metric, "value": val[metric], "temperature": temperature,
                              "config": config}, best_path)
        else:
            bad_epochs += 1
        stop = early_stopping_patience is not None and bad_epochs >= early_stopping_patience
        history.stopped_early = stop and epoch < epochs
        save_last(finished=False)

        context = EpochEnd(epoch, record, history, model, optimizer, out_dir, dist.rank)
        for callback in callbacks:
            callback(context)
        if dist.active:  # every process must agree, or the next collective waits forever
            flag = torch.tensor([float(context.stop)], device=device)
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
            context.stop = bool(flag.item())
        if stop or context.stop:
            break

    last_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
        if best_temperature is not None:  # the temperature the best epoch was validated at
            layers.set_temperature(model, best_temperature)
    if test_set is not None:
        test_loader = DataLoader(_shard(test_set, dist), batch_size=eval_batch_size, num_workers=num_workers,
                                 pin_memory=pin)
        history.test = _run_evaluation(model, test_loader, task, ignore_index, device, dist)
    history.finished = True
    save_last(finished=True, model_state=last_state)  # last.pt keeps the last epoch's weights
    return history


# -- a smoke run: tiny model, synthetic data, alone or under torchrun -------------------------------
class TinyNet(nn.Module):
    """Two convolutions (the second one a dynlab unit), global pooling, a linear classifier."""

    def __init__(self, variant: str = "dyconv", num_classes: int = 2, width: int = 8, in_channels: int = 3) -> None:
        super().__init__()
        self.variant = variant
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.unit = layers.build(variant, width, width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)
        layers.bind(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.stem(x)))
        x = torch.relu(self.bn2(self.unit(x)))
        return self.fc(x.mean(dim=(2, 3)))


def smoke_datasets(samples: int = 192, size: int = 8, seed: int = 0) -> tuple[TensorDataset, ...]:
    """Train/val/test sets of noisy images whose class (0 or 1) shifts the first channel up or down."""
    generator = torch.Generator().manual_seed(seed)
    splits = []
    for n in (samples, samples // 4, samples // 4):
        labels = torch.randint(0, 2, (n,), generator=generator)
        images = torch.randn(n, 3, size, size, generator=generator)
        images[:, 0] += (labels.float() * 2 - 1).reshape(-1, 1, 1) * 0.3
        splits.append(TensorDataset(images, labels))
    return tuple(splits)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynlab.train",
        description="Smoke run of the training engine: a tiny model on synthetic data.",
        epilog="examples:\n  python -m dynlab.train --smoke runs/smoke\n"
               "  torchrun --nproc_per_node=2 -m dynlab.train --smoke runs/smoke-ddp --device cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", metavar="OUT_DIR", required=True, help="folder for checkpoints and history")
    parser.add_argument("--variant", default="dyconv", choices=layers.names())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=192, help="training samples (val and test get a quarter each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="auto (default), cpu, mps, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in OUT_DIR")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = TinyNet(args.variant)
    train_set, val_set, test_set = smoke_datasets(args.samples, seed=args.seed)
    history = fit(model, train_set, val_set, test_set, epochs=args.epochs, batch_size=args.batch_size, lr=1e-2,
                  seed=args.seed, device=args.device, out_dir=args.smoke, overwrite=args.overwrite, quiet=args.quiet)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"best epoch {history.best_epoch} val {history.metric} {history.best_metric:.4f}; test {history.test}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
