"""The variants x tasks grid: one training run per cell, a results table, a report and its plots.

``train_variant`` is the one call the notebooks use to train a variant on a task; ``run_study`` runs
it over the grid. Every finished cell is saved at once (``cells/*.json`` and ``results.csv``), and a
re-run skips finished cells and resumes an interrupted one from its last checkpoint, so an
interrupted study loses nothing.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from . import flops, layers, profiles
from .data import TaskData, load_task, load_timeseries_fold, with_augmentation
from .device import pick_device
from .metrics import mean_std, paired_difference
from .models import resnet18, segmentation_model, tsresnet
from .train import atomic_write_text, fit

TASKS = ("classification", "segmentation", "timeseries")
DATA = ("synthetic", "real")
#: the network each task trains (the Adiac study adds the seed's own networks, see ``dynlab.adiac``)
TASK_MODELS = {"classification": "resnet18", "segmentation": "deeplabv3-resnet18", "timeseries": "tsresnet"}
COLUMNS = ("task", "model", "variant", "data", "profile", "seed", "fold", "metric_name", "metric", "params", "macs",
           "train_seconds", "epochs", "device")

#: the seed study's own numbers, shown beside ours and always labelled as its claims (not measured here)
SEED_CLAIMS = {
    "classification": {"caption": "seed Table 3: Tiny ImageNet top-1 accuracy (%), 224x224, 30 epochs",
                       "values": {"base": 65.2, "global": 70.1, "local": 71.5, "hard": 68.7, "OD-CNN": 73.4}},
    "segmentation": {"caption": "seed Table 4: Pascal VOC 2012 mIoU (%)",
                     "values": {"base": 67.5, "global": 69.60, "local": 70.17, "hard": 70.69, "OD-CNN": 73.09}},
    "timeseries": {"caption": "seed Table 4b: Adiac 10-fold accuracy, mean (population std)",
                   "values": {"CNN": "0.571 (0.059)", "D-CNN": "0.653 (0.062)"}},
}
#: the seed's "OD-CNN" cites ODConv but describes rotated kernels: its claim is shown beside both
SEED_NAME = {"base": "base", "global": "global", "local": "local", "hard": "hard", "odconv": "OD-CNN",
             "odconv4x": "OD-CNN", "orient": "OD-CNN"}


def default_runs_dir() -> Path:
    """``$DYNLAB_RUNS`` or ``runs/`` under the working directory."""
    return Path(os.environ.get("DYNLAB_RUNS", "runs"))


def _profile(profile) -> profiles.Profile:
    if profile is None:
        return profiles.default_profile()
    return profile if isinstance(profile, profiles.Profile) else profiles.get_profile(profile)


def check_choices(variants: Sequence[str] = (), tasks: Sequence[str] = (), data: str = "synthetic",
                  profile: str | None = None) -> None:
    """Refuse bad names before any work starts, naming the valid ones."""
    for variant in variants:
        layers.get(variant)
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if data not in DATA:
        raise ValueError(f"unknown data {data!r}; valid values: {', '.join(DATA)}")
    if profile is not None and not isinstance(profile, profiles.Profile):
        profiles.get_profile(profile)


def load_data(task: str, data: str = "synthetic", profile=None, seed: int = 0, fold: int | None = None,
              limit: int | None = None) -> TaskData:
    """The task's data at the profile's size (``fold``: the seed's 10-fold protocol, time series only;
    ``limit``: at most that many samples per split, for smoke runs)."""
    profile = _profile(profile)
    if fold is not None:
        if task != "timeseries":
            raise ValueError("folds are the time-series protocol; image tasks use their train/val/test splits")
        return load_timeseries_fold(fold, k=10, seed=seed, limit=limit)
    data_profile = "quick" if profile.name == "quick" else "full"
    return load_task(task, data, profile=data_profile, seed=seed, image_size=profile.task(task).size, limit=limit)


def build_model(variant: str, task: str, data: TaskData, profile=None) -> nn.Module:
    """The task's model for ``variant`` at the profile's width."""
    profile = _profile(profile)
    kwargs = profile.model_kwargs(task)
    if task == "classification":
        return resnet18(variant, data.num_classes, in_channels=data.in_channels, **kwargs)
    if task == "segmentation":
        return segmentation_model(variant, data.num_classes, in_channels=data.in_channels, **kwargs)
    return tsresnet(variant, data.num_classes, in_channels=data.in_channels, **kwargs)


@dataclass
class Run:
    """One trained cell: the model (best epoch), its history, its test result and its cost."""
    variant: str
    task: str
    model: nn.Module
    history: object
    data: TaskData
    profile: str
    data_source: str
    seed: int
    fold: int | None
    params: int
    macs: int
    device: str
    out_dir: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def metric_name(self) -> str:
        return self.history.metric

    @property
    def metric(self) -> float:
        return float(self.history.test[self.metric_name])

    @property
    def train_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.history.records))

    def row(self) -> dict:
        return {"task": self.task, "model": TASK_MODELS[self.task], "variant": self.variant, "data": self.data_source, "profile": self.profile,
                "seed": self.seed, "fold": "" if self.fold is None else self.fold, "metric_name": self.metric_name,
                "metric": round(self.metric, 6), "params": self.params, "macs": self.macs,
                "train_seconds": round(self.train_seconds, 2), "epochs": len(self.history.records),
                "device": self.device}


def train_variant(variant: str, task: str, *, data: str = "synthetic", profile=None, seed: int = 0,
                  fold: int | None = None, epochs: int | None = None, device=None, out_dir=None,
                  resume: bool = True, quiet: bool = False, task_data: TaskData | None = None,
                  limit: int | None = None) -> Run:
    """Train ``variant`` on ``task`` with the profile's recipe; test once with the best epoch.

    With ``out_dir`` the run is checkpointed there; ``resume=True`` continues an interrupted run or
    reloads a finished one instead of training again.
    """
    profile = _profile(profile)
    check_choices([variant], [task], data)
    task_data = task_data or load_data(task, data, profile, seed, fold, limit)
    torch.manual_seed(seed)
    model = build_model(variant, task, task_data, profile)
    cost = flops.profile(model, (1, *task_data.sample_shape))
    device = pick_device(device)
    kwargs = profile.fit_kwargs(task)
    if epochs is not None:
        kwargs["epochs"] = epochs
    if task_data.ignore_index is not None:
        kwargs["ignore_index"] = task_data.ignore_index
    train_set = with_augmentation(task_data.train, profile.task(task).augment)
    history = fit(model, train_set, task_data.val, task_data.test, seed=seed, device=device,
                  out_dir=out_dir, resume=resume and out_dir is not None, quiet=quiet, **kwargs)
    return Run(variant, task, model, history, task_data, profile.name, data, seed, fold, cost.params, cost.macs,
               str(device), Path(out_dir) if out_dir is not None else None)


def course_runs(variant: str, tasks: Sequence[str] = TASKS, *, profile=None, seed: int = 0, data: str = "synthetic",
                quiet: bool = False) -> dict[str, Run]:
    """What a variant notebook trains: ``variant`` on each task, kept under ``$DYNLAB_RUNS/course/``.

    Running the notebook again reloads the finished runs instead of training again.
    """
    profile = _profile(profile)
    root = default_runs_dir() / "course"
    return {task: train_variant(variant, task, data=data, profile=profile, seed=seed, quiet=quiet,
                                out_dir=root / f"{profile.name}-{data}-{variant}-{task}-seed{seed}")
            for task in tasks}


def cost_table(variants: Sequence[str], profile=None) -> str:
    """Markdown: parameters and MACs per sample of each variant beside ``base``, for the profile's models
    on each task and for the full-size ResNet-18 (64x64 small stem and the seed's 224x224)."""
    profile = _profile(profile)
    variants = list(dict.fromkeys(["base", *variants]))
    settings = []
    for task in TASKS:
        data = load_data(task, "synthetic", profile, limit=1)
        shape = (1, *data.sample_shape)
        settings.append((f"{task}, {profile.name} profile model, input {shape[1:]}",
                         lambda v, t=task, d=data: build_model(v, t, d, profile), shape))
    settings += flops.table_settings()[:2]
    return flops.format_table(flops.table(variants, settings))


# -- the grid --------------------------------------------------------------------------------------
def _cell_name(task: str, variant: str, seed: int, fold: int | None) -> str:
    return f"{task}__{variant}__seed{seed}" + (f"__fold{fold}" if fold is not None else "")


def read_rows(out: str | os.PathLike) -> list[dict]:
    """The finished cells of a study folder (from ``cells/*.json``)."""
    rows = [json.loads(path.read_text()) for path in sorted((Path(out) / "cells").glob("*.json"))]
    for row in rows:  # cells saved before results had a model column
        row.setdefault("model", TASK_MODELS[row["task"]])
    return rows


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``results.csv`` (a study folder or the file itself), numbers as numbers."""
    path = Path(path)
    path = path / "results.csv" if path.is_dir() else path
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("metric", "train_seconds"):
            row[key] = float(row[key])
        for key in ("seed", "params", "macs", "epochs"):
            row[key] = int(row[key])
    return rows


def load_model(out: str | os.PathLike, task: str, variant: str, seed: int = 0, fold: int | None = None) -> nn.Module:
    """The best model of a finished study cell, rebuilt and loaded (eval mode)."""
    from .train import load_checkpoint

    out = Path(out)
    cell = json.loads((out / "cells" / f"{_cell_name(task, variant, seed, fold)}.json").read_text())
    data = load_data(task, cell["data"], cell["profile"], seed, fold, limit=1)
    model = build_model(variant, task, data, cell["profile"])
    load_checkpoint(out / "runs" / _cell_name(task, variant, seed, fold) / "best.pt", model)
    return model.eval()


def write_csv(rows: Sequence[dict], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in COLUMNS})
    os.replace(temporary, path)


def run_study(variants: Sequence[str] | None = None, tasks: Sequence[str] | None = None, *,
              data: str = "synthetic", profile=None, seeds: Sequence[int] = (0,), folds: Sequence[int] | None = None,
              out: str | os.PathLike | None = None, epochs: int | None = None, device=None, quiet: bool = False,
              limit: int | None = None, command: str = "") -> Path:
    """Train every (task, variant, seed[, fold]) cell not yet finished in ``out``; write the report.

    Returns the study folder: ``results.csv``, ``report.md``, PNG plots, ``cells/`` and ``runs/``.
    """
    variants = list(variants or layers.names())
    tasks = list(tasks or TASKS)
    profile = _profile(profile)
    check_choices(variants, tasks, data, profile)
    out = Path(out) if out is not None else default_runs_dir() / f"study-{profile.name}-{data}"
    (out / "cells").mkdir(parents=True, exist_ok=True)
    device = pick_device(device)
    fold_list = list(folds) if folds is not None else [None]
    started = time.perf_counter()
    from tqdm.auto import tqdm

    cells = [(t, v, s, f) for t in tasks for s in seeds for f in (fold_list if t == "timeseries" else [None])
             for v in variants]
    progress = tqdm(cells, desc="study", disable=quiet, unit="cell")
    for task, variant, seed, fold in progress:
        name = _cell_name(task, variant, seed, fold)
        cell_path = out / "cells" / f"{name}.json"
        progress.set_postfix_str(name)
        if cell_path.exists():
            continue
        run = train_variant(variant, task, data=data, profile=profile, seed=seed, fold=fold, epochs=epochs,
                            device=device, out_dir=out / "runs" / name, resume=True, quiet=quiet, limit=limit)
        row = run.row()
        row["curve"] = [r["val_metric"] for r in run.history.records]
        atomic_write_text(cell_path, json.dumps(row))
        write_csv(read_rows(out), out / "results.csv")
    rows = read_rows(out)
    write_csv(rows, out / "results.csv")
    write_report(rows, out, command=command, wall_seconds=time.perf_counter() - started, device=str(device))
    return out


# -- the report ------------------------------------------------------------------------------------
def _format_metric(task: str, value: float) -> str:
    return f"{value:.3f}" if task == "timeseries" else f"{100 * value:.1f}"


def summarise(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Per task, one line per variant: mean and population std over seeds/folds, cost, and the
    paired difference to ``base`` over matched seeds/folds (a 95% CI needs at least two pairs)."""
    summary = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        selected = [r for r in rows if r["task"] == task]
        key = lambda r: (int(r["seed"]), str(r["fold"]))  # noqa: E731
        base = {key(r): float(r["metric"]) for r in selected if r["variant"] == "base"}
        lines = []
        order = {name: index for index, name in enumerate(layers.names())}
        for variant in sorted(dict.fromkeys(r["variant"] for r in selected), key=lambda v: order.get(v, len(order))):
            mine = {key(r): float(r["metric"]) for r in selected if r["variant"] == variant}
            mean, std = mean_std(list(mine.values()))
            first = next(r for r in selected if r["variant"] == variant)
            line = {"variant": variant, "n": len(mine), "mean": mean, "std": std, "params": int(first["params"]),
                    "macs": int(first["macs"]), "metric_name": first["metric_name"],
                    "train_seconds": sum(float(r["train_seconds"]) for r in selected if r["variant"] == variant) / len(mine),
                    "vs_base": None}
            shared = sorted(set(mine) & set(base))
            if variant != "base" and len(shared) >= 2:
                line["vs_base"] = paired_difference([mine[k] for k in shared], [base[k] for k in shared])
            lines.append(line)
        summary[task] = lines
    return summary


def report_markdown(rows: Sequence[dict], command: str = "", wall_seconds: float | None = None,
                    device: str = "") -> str:
    profiles_used = sorted({r["profile"] for r in rows})
    data_used = sorted({r["data"] for r in rows})
    out = ["# dynlab comparison study", ""]
    if command:
        out += [f"Command: `{command}`", ""]
    out += [f"Profile: {', '.join(profiles_used)}; data: {', '.join(data_used)}; device: {device or 'see results.csv'}; "
            f"machine: {platform.machine()} {platform.processor() or ''} with {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, Python {platform.python_version()}.", ""]
    if wall_seconds is not None:
        out += [f"Wall time of this invocation: {wall_seconds / 60:.1f} min (cells already finished are not re-run); "
                f"training time of all {len(rows)} cells together: "
                f"{sum(float(r['train_seconds']) for r in rows) / 60:.1f} min.", ""]
    if "quick" in profiles_used:
        out += ["Quick profile: narrow networks trained for a few epochs on small data. These numbers show the",
                "methods working end to end on this machine; they are not what the methods reach at full size.", ""]
    for task, lines in summarise(rows).items():
        unit = "" if task == "timeseries" else " (%)"
        claims = SEED_CLAIMS[task]
        out += [f"## {task}", "",
                f"| variant | {lines[0]['metric_name']}{unit} mean | std | runs | params | MACs/sample | "
                f"train s/run | vs base: mean diff [95% CI] | seed's claim* |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        for line in lines:
            diff = line["vs_base"]
            diff_text = "n/a (one seed)" if diff is None and line["variant"] != "base" else ""
            if diff is not None:
                scale = 1 if task == "timeseries" else 100
                diff_text = f"{scale * diff.mean:+.2f} [{scale * diff.low:+.2f}, {scale * diff.high:+.2f}]"
            claim = claims["values"].get(SEED_NAME.get(line["variant"], ""), "")
            out.append(f"| {line['variant']} | {_format_metric(task, line['mean'])} | "
                       f"{_format_metric(task, line['std'])} | {line['n']} | {line['params'] / 1e6:.2f} M | "
                       f"{line['macs'] / 1e6:.1f} M | {line['train_seconds']:.1f} | {diff_text} | {claim} |")
        out += ["", f"*{claims['caption']}: the seed's numbers on the real data set, not measured here. "
                "Its 'OD-CNN' cites ODConv but describes rotated kernels, so its claim stands beside both.", ""]
    out += ["Plots: `metric_per_variant.png`, `metric_vs_macs.png`, `curves.png`. "
            "MACs are multiply-accumulates per sample (FLOPs = 2 x MACs).", ""]
    return "\n".join(out)


def write_report(rows: Sequence[dict], out: str | os.PathLike, command: str = "", wall_seconds=None,
                 device: str = "") -> Path:
    from . import viz

    out = Path(out)
    if not rows:
        raise ValueError(f"no finished cells in {out}: nothing to report")
    atomic_write_text(out / "report.md", report_markdown(rows, command, wall_seconds, device))
    viz.plot_metric_per_variant(rows).savefig(out / "metric_per_variant.png", dpi=100, bbox_inches="tight")
    viz.plot_metric_vs_macs(rows).savefig(out / "metric_vs_macs.png", dpi=100, bbox_inches="tight")
    viz.plot_curves(rows).savefig(out / "curves.png", dpi=100, bbox_inches="tight")
    return out / "report.md"
