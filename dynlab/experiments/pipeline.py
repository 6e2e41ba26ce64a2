"""The one way a cell is trained: its data, its model, its cost, its recipe, ``fit``, and its row."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import ConcatDataset

from .. import flops, layers, profiles
from ..data import TaskData, load_task, load_timeseries_fold, with_augmentation
from ..data.tasks import SYNTHETIC_SIZES, SYNTHETIC_VERSIONS
from ..device import describe, pick_device
from ..engine import History, fit, load_checkpoint
from ..models import init_dynamic_from_static, net1_dcnn, net2_dcnn, resnet18, segmentation_model, tsresnet
from . import attention
from .baselines import trivial_baseline
from .per_class import per_class
from .cell import Cell


def get_profile(profile) -> profiles.Profile:
    """A profile object from a name (None: ``profiles.default_profile()``)."""
    if profile is None:
        return profiles.default_profile()
    return profile if isinstance(profile, profiles.Profile) else profiles.get_profile(profile)


def load_data(task: str, data: str = "synthetic", profile=None, seed: int = 0, fold: int | None = None,
              limit: int | None = None) -> TaskData:
    """The task's data at the profile's size (``fold``: the paper's 10-fold protocol, time series only;
    ``limit``: at most that many samples per split, for smoke runs)."""
    profile = get_profile(profile)
    if fold is not None:
        if task != "timeseries":
            raise ValueError("folds are the time-series protocol; image tasks use their train/val/test splits")
        return load_timeseries_fold(fold, k=10, seed=seed, limit=limit)
    data_profile = "quick" if profile.name == "quick" else "full"
    return load_task(task, data, profile=data_profile, seed=seed, image_size=profile.task(task).size, limit=limit)


def training_work(task: str, profile=None, variant: str = "base") -> int:
    """MACs per sample x training samples x epochs: what one run of the task costs in the profile,
    on the built-in data (the time series are always Adiac), to compare profiles before choosing one."""
    profile = get_profile(profile)
    data = load_data(task, "synthetic", profile, limit=None if task == "timeseries" else 1)  # Adiac is small
    if task == "timeseries":
        samples = len(data.train)
    else:
        samples = SYNTHETIC_SIZES[task]["quick" if profile.name == "quick" else "full"][2][0]
    macs = flops.cost(build_model(variant, task, data, profile), (1, *data.sample_shape)).macs
    return macs * samples * profile.task(task).epochs


def build_model(variant: str, task: str, data: TaskData, profile=None, **unit_options) -> nn.Module:
    """The task's default network for ``variant`` at the profile's width, with the unit options its
    recipe sets (``unit_options`` given here win)."""
    profile = get_profile(profile)
    kwargs = profile.model_kwargs(task)
    unit_options = {**profile.unit_options(task, variant), **unit_options}
    if task == "classification":
        return resnet18(variant, data.num_classes, in_channels=data.in_channels, **kwargs, **unit_options)
    if task == "segmentation":
        return segmentation_model(variant, data.num_classes, in_channels=data.in_channels, **kwargs, **unit_options)
    return tsresnet(variant, data.num_classes, in_channels=data.in_channels, **kwargs, **unit_options)


def cell_data(cell: Cell, limit: int | None = None) -> TaskData:
    """The cell's train / validation / test data (a ``refit`` cell gets its standard split as it is)."""
    return load_data(cell.task, cell.data, cell.profile, cell.seed, cell.fold, limit)


def build_cell_model(cell: Cell, data: TaskData, out: Path | None = None) -> nn.Module:
    """The cell's network, untrained; a ``-from-static`` cell starts from its twin's best weights in ``out``."""
    torch.manual_seed(cell.init_seed)
    if cell.model in ("resnet18", "deeplabv3-resnet18", "tsresnet"):
        return build_model(cell.variant, cell.task, data, cell.profile, **cell.options)
    if cell.options:
        raise ValueError(f"unit options apply to the tasks' own networks, not to {cell.name}")
    build = net1_dcnn if cell.model.startswith("net1") else net2_dcnn
    dropout = get_profile(cell.profile).timeseries.dropout
    model = build(cell.variant, data.num_classes, length=data.sample_shape[-1], dropout=dropout)
    twin = cell.static_twin
    if twin is None:
        return model
    if out is None:
        raise ValueError(f"{cell.name} starts from the trained {twin.name}: give the grid folder holding it")
    static = build("base", data.num_classes, length=data.sample_shape[-1], dropout=dropout)
    checkpoint = Path(out) / "runs" / twin.name / "best.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{cell.name} starts from {twin.name}, which has not been trained: "
                                f"no {checkpoint}. Run the grid with both cells.")
    load_checkpoint(checkpoint, static)
    if cell.variant == "dyconv":
        return init_dynamic_from_static(model, static, seed=cell.seed, freeze=True)
    control = copy.deepcopy(static)  # the control: the same extra training, kernels frozen, no attention
    for module in control.modules():
        if isinstance(module, layers.StaticConv):
            module.weight.requires_grad_(False)
    return control


def recipe_for(recipe: dict, variant: str) -> dict:
    """``recipe`` (a task profile as a dict, ``TaskProfile.for_variant``'s) with only ``variant``'s unit
    options and no other variant's own fields: a change made for another variant does not change this cell."""
    options = recipe.get("unit_options") or {}
    fields = {k: v for k, v in recipe.items() if k != "variant_recipe"}
    return {**fields, "unit_options": {variant: options[variant]} if variant in options else {}}


def data_version(task: str, data: str) -> int:
    """The revision of the data generator a cell trains on (1: as first released)."""
    return SYNTHETIC_VERSIONS.get(task, 1) if data == "synthetic" else 1


def cell_settings(cell: Cell, epochs: int | None = None, limit: int | None = None) -> dict:
    """What decides a cell's result beside its name: recipe (and its version), epochs, limit, data (and
    its version), options."""
    recipe = get_profile(cell.profile).task(cell.task).for_variant(cell.variant)
    return {"profile": cell.profile, "recipe": recipe_for(dataclasses.asdict(recipe), cell.variant),
            "recipe_version": profiles.RECIPE_VERSION, "epochs": recipe.epochs if epochs is None else epochs, "limit": limit, "data": cell.data,
            "data_version": data_version(cell.task, cell.data), "unit_options": dict(cell.options)}


@dataclass
class Run:
    """A trained cell: the model (its kept epoch), its history, its data, its cost and where it ran."""

    cell: Cell
    model: nn.Module
    history: History
    data: TaskData
    params: int
    macs: int
    device: str
    train_series: int
    out_dir: Path | None = None
    settings: dict = field(default_factory=dict)
    #: the trivial answer on the same test split (``baselines.trivial_baseline``)
    baseline: dict = field(default_factory=dict)
    #: what the model's attention does on the test split (``attention.attention_summary``); None until
    #: ``measure_attention`` runs, which ``row`` does: its probes take seconds a cell, and a notebook that
    #: retrains a variant never reads them
    attention: dict | None = None
    #: each class's test accuracy, or IoU for segmentation (``per_class.per_class``)
    per_class: dict = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.cell.variant

    @property
    def task(self) -> str:
        return self.cell.task

    @property
    def metric_name(self) -> str:
        return self.history.metric

    @property
    def metric(self) -> float:
        return float(self.history.test[self.metric_name])

    @property
    def train_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.history.records))

    def measure_attention(self) -> dict:
        """``attention``, measured on the test split the first time it is asked for."""
        if self.attention is None:
            batch_size = get_profile(self.cell.profile).task(self.task).for_variant(self.variant).batch_size
            summary = attention.attention_summary(self.model, self.data.test, class_names=self.data.class_names,
                                                  ignore_index=self.data.ignore_index, batch_size=batch_size)
            self.attention = attention.as_numbers(summary)
        return self.attention

    def row(self) -> dict:
        """The cell's record in its grid folder (``cells/NAME.json``); the CSVs keep ``cell.COLUMNS`` of it."""
        c = self.cell
        row = {"task": c.task, "model": c.model, "variant": c.variant, "data": c.data, "profile": c.profile,
               "seed": c.seed, "fold": "" if c.fold is None else c.fold, "metric_name": self.metric_name,
               "metric": round(self.metric, 6), "params": self.params, "macs": self.macs,
               "train_seconds": round(self.train_seconds, 2), "epochs": len(self.history.records),
               "device": self.device, "protocol": c.protocol, "best_epoch": self.history.best_epoch,
               "val_metric": self.history.best_metric, "curve": [r["val_metric"] for r in self.history.records],
               "train_series": self.train_series, "settings": self.settings, "baseline": self.baseline,
               "attention": self.measure_attention(), "per_class": self.per_class}
        if c.options:
            row["unit_options"] = dict(c.options)
        return row


def train_cell(cell: Cell, out_dir: str | Path | None = None, *, grid: str | Path | None = None, device=None,
               epochs: int | None = None, limit: int | None = None, quiet: bool = False, resume: bool = True,
               overwrite: bool = False, task_data: TaskData | None = None) -> Run:
    """Train ``cell`` with its profile's recipe (or reload it, if ``out_dir`` holds it finished).

    A ``standard`` or ``10fold`` cell trains on its training split and keeps its best epoch on the
    validation split. A ``refit`` cell is the standard cell's final run: the same network, seed and
    recipe trained on train and validation together for the recipe's whole schedule, keeping the
    last epoch; the validation split it trained on only monitors it. Nothing is chosen on the test
    split, which is scored once. ``grid``: the grid folder (where a ``-from-static`` cell finds its twin).
    """
    profile = get_profile(cell.profile)
    settings = profile.task(cell.task).for_variant(cell.variant)
    refit = cell.protocol == "refit"
    if refit and (settings.lr_schedule == "plateau" or settings.early_stopping_patience is not None):
        raise ValueError(f"{cell.name}: a refit trains the recipe's whole schedule and keeps its last epoch, so it "
                         f"needs a fixed-length recipe (cosine or one-cycle, no early stopping); recipe {profile.name!r} "
                         f"has lr_schedule={settings.lr_schedule!r}, "
                         f"early_stopping_patience={settings.early_stopping_patience}")
    data = task_data or cell_data(cell, limit)
    model = build_cell_model(cell, data, grid)
    cost = flops.cost(model, (1, *data.sample_shape))
    kwargs = profile.fit_kwargs(cell.task, cell.variant)
    if epochs is not None:
        kwargs["epochs"] = epochs
    if data.ignore_index is not None:
        kwargs["ignore_index"] = data.ignore_index
    device = pick_device(device)
    train = ConcatDataset([data.train, data.val]) if refit else data.train
    history = fit(model, with_augmentation(train, settings.augment), data.val, data.test, seed=cell.seed, device=device,
                  out_dir=out_dir, resume=resume and out_dir is not None and not overwrite, overwrite=overwrite,
                  quiet=quiet,
                  keep="last" if refit else "best", **kwargs)
    return Run(cell, model, history, data, cost.params, cost.macs, describe(device), len(train),
               Path(out_dir) if out_dir is not None else None, cell_settings(cell, epochs, limit),
               trivial_baseline(data), None,
               per_class(model, data, batch_size=kwargs.get("batch_size", 32)))
