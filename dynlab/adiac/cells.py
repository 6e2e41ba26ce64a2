"""The grid's cells: what one training run of the Adiac study is, its recipe, and how it is trained."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset

from .. import flops, layers, profiles, study
from ..data import with_augmentation
from ..device import describe, pick_device
from ..models import init_dynamic_from_static, net1_dcnn, net2_dcnn, tsresnet
from ..train import atomic_write_text, fit, load_checkpoint

#: ``refit``: the standard split again, trained on all 390 training series (see ``train_cell``)
PROTOCOLS = ("standard", "refit", "10fold")
SEEDS = (0, 1, 2, 3, 4)
FOLDS = tuple(range(10))
#: ``tsresnet`` variants in the 10-fold protocol, beside the seed's networks
FOLD_VARIANTS = ("base", "dyconv")
#: the seed's networks; ``-from-static``: started from the trained static twin, kernels frozen
SEED_MODELS = ("net1", "net1-from-static", "net2", "net2-from-static")

_PLATEAU = profiles.TaskProfile(epochs=200, batch_size=16, plateau_patience=20, plateau_min_lr=1e-5,
                                early_stopping_patience=50, width=64, dropout=0.0)
_COSINE = replace(_PLATEAU, lr_schedule="cosine", plateau_patience=None, early_stopping_patience=None)
#: candidate recipes for ``tsresnet`` on Adiac (width 64, 200 epochs, batch 16, Adam at 1e-3 unless
#: named). ``benchmarks/adiac_recipes.py`` compares them on validation accuracy; the ``full``
#: profile's time-series recipe is the one it chose (``DEFAULT_RECIPE``).
RECIPES = {
    "plateau": _PLATEAU,
    "cosine": _COSINE,
    "cosine-smooth": replace(_COSINE, label_smoothing=0.1),
    "cosine-mirror": replace(_COSINE, augment="mirror"),
    "cosine-mirror-smooth": replace(_COSINE, augment="mirror", label_smoothing=0.1),
    "cosine-outline": replace(_COSINE, augment="outline"),
    "cosine-outline-smooth": replace(_COSINE, augment="outline", label_smoothing=0.1),
    "cosine-outline-adamw": replace(_COSINE, augment="outline", optimizer="adamw", weight_decay=0.05),
    "cosine-outline-lr3e-3": replace(_COSINE, augment="outline", lr=3e-3),
    "cosine-outline-dropout": replace(_COSINE, augment="outline", dropout=0.3),
}
DEFAULT_RECIPE = next(name for name, r in RECIPES.items() if r == profiles.get_profile("full").timeseries)


def recipe_profile(recipe: str | None = None) -> profiles.Profile:
    """The ``full`` profile with candidate ``recipe`` for the time series (None: the chosen one)."""
    recipe = recipe or DEFAULT_RECIPE
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(RECIPES)}")
    full = profiles.get_profile("full")
    if recipe == DEFAULT_RECIPE:
        return full
    return replace(full, name=f"full+{recipe}", timeseries=RECIPES[recipe])


#: how the report names the seed's networks
LABELS = {
    ("net1", "base"): "Net1 CNN", ("net1", "dyconv"): "Net1 D-CNN, from scratch",
    ("net1-from-static", "base"): "Net1 CNN+ (control: trained CNN, kernel frozen, trained again)",
    ("net1-from-static", "dyconv"): "Net1 D-CNN from the trained CNN, kernels frozen (the seed's)",
    ("net2", "base"): "Net2 CNN", ("net2", "dyconv"): "Net2 D-CNN, from scratch",
    ("net2-from-static", "base"): "Net2 CNN+ (control)",
    ("net2-from-static", "dyconv"): "Net2 D-CNN from the trained CNN, kernels frozen (the seed's)",
}


def short_label(model: str, variant: str) -> str:
    """``tsresnet base``, ``Net1 CNN``, ``Net1 CNN+`` (the control), ``Net2 D-CNN``, ``Net2 D-CNN (seed's)``."""
    if model == "tsresnet":
        return f"tsresnet {variant}"
    network = model.split("-")[0].capitalize()
    from_static = model.endswith("-from-static")
    if variant == "base":
        return f"{network} CNN" + ("+" if from_static else "")
    return f"{network} D-CNN" + (" (seed's)" if from_static else "")


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""
    protocol: str
    model: str
    variant: str
    seed: int
    fold: int | None = None

    @property
    def name(self) -> str:
        parts = [self.protocol, self.model, self.variant, f"seed{self.seed}"]
        return "__".join(parts + ([f"fold{self.fold}"] if self.fold is not None else []))

    def profile(self, recipe: str | None = None) -> profiles.Profile:
        """The seed's Table 1 recipe for its own networks, the kit's (or candidate ``recipe``) for ``tsresnet``."""
        return recipe_profile(recipe) if self.model == "tsresnet" else profiles.get_profile("seed")

    @property
    def static_twin(self) -> "Cell | None":
        """The trained static network a ``-from-static`` cell starts from."""
        if not self.model.endswith("-from-static"):
            return None
        return Cell(self.protocol, self.model.removesuffix("-from-static"), "base", self.seed, self.fold)


def grid(protocols: Sequence[str] = PROTOCOLS, *, variants: Sequence[str] | None = None,
         seeds: Sequence[int] = SEEDS, folds: Sequence[int] = FOLDS,
         fold_variants: Sequence[str] = FOLD_VARIANTS) -> list[Cell]:
    """The cells of the protocols, static twins before the cells that start from them."""
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    variants = list(variants or layers.names())
    study.check_choices(list(variants) + list(fold_variants))
    for fold in folds:
        if fold not in FOLDS:
            raise ValueError(f"folds are 0..9, got {fold}")
    cells = []
    if "standard" in protocols:
        cells += [Cell("standard", "tsresnet", v, s) for s in seeds for v in variants]
    if "refit" in protocols:
        cells += [Cell("refit", "tsresnet", v, s) for s in seeds for v in variants]
    if "10fold" in protocols:
        for fold in folds:
            for model in SEED_MODELS:
                cells += [Cell("10fold", model, v, 0, fold) for v in ("base", "dyconv")]
            cells += [Cell("10fold", "tsresnet", v, 0, fold) for v in fold_variants]
    return sorted(cells, key=lambda c: c.static_twin is not None)


# -- one cell ----------------------------------------------------------------------------------------
def load_cell_data(cell: Cell, limit: int | None = None):
    """The cell's train / validation / test series (standard split drawn per seed, or its fold).

    A ``refit`` cell gets its seed's standard split as it is; ``train_cell`` trains it on both parts.
    """
    if cell.protocol in ("standard", "refit"):
        return study.load_data("timeseries", "real", "full", cell.seed, limit=limit)
    return study.load_data("timeseries", "real", "full", cell.seed, cell.fold, limit=limit)


def build_cell_model(cell: Cell, data, out: Path | None = None, recipe: str | None = None,
                     unit_options: dict | None = None) -> nn.Module:
    """The cell's network, untrained; a ``-from-static`` cell starts from its twin's best weights in ``out``.

    ``unit_options`` (``tsresnet`` only) go to the variant's conv units, for experiments beside the grid
    (e.g. ``{"attention_norm": "none"}`` for ``odconv``); the grid itself builds every unit as registered.
    """
    torch.manual_seed(cell.seed if cell.fold is None else 1000 * cell.seed + cell.fold)
    if unit_options and cell.model != "tsresnet":
        raise ValueError(f"unit options apply to tsresnet cells only, not to {cell.name}")
    if cell.model == "tsresnet":
        return tsresnet(cell.variant, data.num_classes, **cell.profile(recipe).model_kwargs("timeseries"),
                        **(unit_options or {}))
    build = net1_dcnn if cell.model.startswith("net1") else net2_dcnn
    dropout = cell.profile().timeseries.dropout
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
    control = copy.deepcopy(static)
    for module in control.modules():
        if isinstance(module, layers.StaticConv):
            module.weight.requires_grad_(False)
    return control


def train_cell(cell: Cell, out: str | os.PathLike, *, device=None, epochs: int | None = None,
               limit: int | None = None, quiet: bool = True, recipe: str | None = None,
               unit_options: dict | None = None) -> dict:
    """Train one cell (or reload it, if finished) and save its row in ``out/cells``; returns the row.

    A ``standard`` or ``10fold`` cell trains on its training series and keeps its best epoch on the
    validation series. A ``refit`` cell is the standard cell's final run: the same network, seed and
    recipe, trained on all 390 training series (its validation series included) for the recipe's
    whole schedule, keeping the last epoch. Nothing about it is chosen on the test series: the recipe
    and its length were chosen on validation (``benchmarks/adiac_recipes.py``), and the validation
    series it trained on only monitor the run (its ``val_metric`` is not a held-out score). It needs a
    recipe of fixed length (cosine decay, no early stopping).

    ``unit_options``: see ``build_cell_model``; a grid folder should hold cells of one setting only.
    """
    out = Path(out)
    cell_path = out / "cells" / f"{cell.name}.json"
    if cell_path.exists():
        return json.loads(cell_path.read_text())
    profile = cell.profile(recipe)
    settings = profile.timeseries
    refit = cell.protocol == "refit"
    if refit and (settings.lr_schedule != "cosine" or settings.early_stopping_patience is not None):
        raise ValueError(f"{cell.name}: a refit trains the recipe's whole schedule and keeps its last epoch, so it "
                         f"needs a fixed-length recipe (cosine decay, no early stopping); recipe {profile.name!r} "
                         f"has lr_schedule={settings.lr_schedule!r}, "
                         f"early_stopping_patience={settings.early_stopping_patience}")
    data = load_cell_data(cell, limit)
    model = build_cell_model(cell, data, out, recipe, unit_options)
    cost = flops.profile(model, (1, *data.sample_shape))
    kwargs = profile.fit_kwargs("timeseries")
    if epochs is not None:
        kwargs["epochs"] = epochs
    device = pick_device(device)
    train = ConcatDataset([data.train, data.val]) if refit else data.train
    history = fit(model, with_augmentation(train, settings.augment), data.val, data.test, seed=cell.seed,
                  device=device, out_dir=out / "runs" / cell.name, resume=True, quiet=quiet,
                  keep="last" if refit else "best", **kwargs)
    row = {"task": "timeseries", "model": cell.model, "variant": cell.variant, "data": "real",
           "profile": profile.name, "seed": cell.seed, "fold": "" if cell.fold is None else cell.fold,
           "metric_name": history.metric, "metric": round(float(history.test[history.metric]), 6),
           "params": cost.params, "macs": cost.macs,
           "train_seconds": round(sum(r["seconds"] for r in history.records), 2), "epochs": len(history.records),
           "device": describe(device), "protocol": cell.protocol, "best_epoch": history.best_epoch,
           "val_metric": history.best_metric,
           "curve": [r["val_metric"] for r in history.records], "train_series": len(train)}
    if unit_options:
        row["unit_options"] = dict(unit_options)
    cell_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell_path, json.dumps(row))
    return row



def cell_from_row(row: dict) -> Cell:
    """The grid cell a results row came from (to re-run it)."""
    fold = None if row["fold"] in ("", None) else int(row["fold"])
    protocol = row.get("protocol") or ("standard" if fold is None else "10fold")
    return Cell(protocol, row.get("model") or "tsresnet", row["variant"], int(row["seed"]), fold)
