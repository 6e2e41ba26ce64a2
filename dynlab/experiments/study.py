"""The comparison study: every variant on every task (seeds, optionally the Adiac folds), a results table,
a report beside the paper's claims, and its plots. ``dynlab study`` runs it."""
from __future__ import annotations

import csv
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .. import layers
from ..data.tasks import TASKS
from ..engine import load_checkpoint
from .cell import Cell, cell_from_row
from .pipeline import build_model, get_profile, load_data, train_cell
from .report import Line, markdown_table, plot_to, summarise
from .runner import read_rows, run_cells, run_dir, write_csv

#: the paper's own numbers, shown beside ours and always labelled as its claims (not measured here)
PAPER_CLAIMS = {
    "classification": {"caption": "seed Table 3: Tiny ImageNet top-1 accuracy (%), 224x224, 30 epochs",
                       "values": {"base": 65.2, "global": 70.1, "local": 71.5, "hard": 68.7, "OD-CNN": 73.4}},
    "segmentation": {"caption": "seed Table 4: Pascal VOC 2012 mIoU (%)",
                     "values": {"base": 67.5, "global": 69.60, "local": 70.17, "hard": 70.69, "OD-CNN": 73.09}},
    "timeseries": {"caption": "seed Table 4b: Adiac 10-fold accuracy, mean (population std)",
                   "values": {"CNN": "0.571 (0.059)", "D-CNN": "0.653 (0.062)"}},
}


def default_runs_dir() -> Path:
    """``$DYNLAB_RUNS`` or ``runs/`` under the working directory."""
    return Path(os.environ.get("DYNLAB_RUNS", "runs"))


def study_cells(variants: Sequence[str] | None = None, tasks: Sequence[str] | None = None, *, data: str = "synthetic",
                profile=None, seeds: Sequence[int] = (0,), folds: Sequence[int] | None = None) -> list[Cell]:
    """The grid's cells: every (task, seed[, fold], variant); folds apply to the time series only."""
    variants, tasks = list(variants or layers.names()), list(tasks or TASKS)
    name = get_profile(profile).name
    return [Cell(t, v, s, f, "standard" if f is None else "10fold", profile=name, data=data)
            for t in tasks for s in seeds for f in (list(folds) if folds is not None and t == "timeseries" else [None])
            for v in variants]


def train_variant(variant: str, task: str, *, data: str = "synthetic", profile=None, seed: int = 0,
                  fold: int | None = None, epochs: int | None = None, device=None, out_dir=None, resume: bool = True,
                  overwrite: bool = False, quiet: bool = False, limit: int | None = None):
    """Train one study cell (``dynlab train``): ``variant`` on ``task`` with the profile's recipe."""
    cell = Cell(task, variant, seed, fold, "standard" if fold is None else "10fold", profile=get_profile(profile).name,
                data=data)
    return train_cell(cell, out_dir, device=device, epochs=epochs, limit=limit, quiet=quiet, resume=resume,
                      overwrite=overwrite)


def run_study(variants: Sequence[str] | None = None, tasks: Sequence[str] | None = None, *,
              data: str = "synthetic", profile=None, seeds: Sequence[int] = (0,), folds: Sequence[int] | None = None,
              out: str | os.PathLike | None = None, epochs: int | None = None, device=None, quiet: bool = False,
              limit: int | None = None, command: str = "", jobs: int = 1, retrain_mismatched: bool = False) -> Path:
    """Train every cell not yet finished in ``out``; write ``results.csv``, ``report.md`` and the plots.

    Returns the study folder (``cells/`` and ``runs/`` beside the results).
    """
    profile = get_profile(profile)
    if folds is not None and "timeseries" not in (tasks or TASKS):
        raise ValueError("--folds are the time-series protocol: add timeseries to --tasks, or leave --folds out")
    cells = study_cells(variants, tasks, data=data, profile=profile, seeds=seeds, folds=folds)  # checks the names
    out = Path(out) if out is not None else default_runs_dir() / f"study-{profile.name}-{data}"
    started = time.perf_counter()
    run_cells(cells, out, jobs=jobs, device=device, epochs=epochs, limit=limit, quiet=quiet, command=command,
              name="study", after_each=lambda folder: write_csv(read_rows(folder), folder / "results.csv"),
              retrain_mismatched=retrain_mismatched)
    rows = read_rows(out)
    write_csv(rows, out / "results.csv")
    write_report(rows, out, command=command, wall_seconds=time.perf_counter() - started,
                 device=rows[0]["device"] if rows else "")
    return out


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
    """The kept model of a finished study cell, rebuilt and loaded (eval mode)."""
    rows = [r for r in read_rows(out) if (r["task"], r["variant"], int(r["seed"])) == (task, variant, seed)
            and r["fold"] == ("" if fold is None else fold)]
    if not rows:
        raise FileNotFoundError(f"{out} holds no finished {task} cell of {variant}, seed {seed}"
                                + (f", fold {fold}" if fold is not None else ""))
    row = rows[0]
    data = load_data(task, row["data"], row["profile"], seed, fold, limit=1)
    model = build_model(variant, task, data, row["profile"])

    load_checkpoint(run_dir(out, cell_from_row(row)) / "best.pt", model)
    return model.eval()


# -- the report ------------------------------------------------------------------------------------
def _format_metric(task: str, value: float) -> str:
    return f"{value:.3f}" if task == "timeseries" else f"{100 * value:.1f}"


def _difference_text(task: str, line: Line) -> str:
    diff = line.difference_to((line.model, "base"))
    if diff is None:
        return "" if line.variant == "base" else "n/a (one seed)"
    scale = 1 if task == "timeseries" else 100
    return f"{scale * diff.mean:+.2f} [{scale * diff.low:+.2f}, {scale * diff.high:+.2f}]"


def task_table(task: str, rows: Sequence[dict]) -> list[str]:
    lines = summarise(rows)
    unit = "" if task == "timeseries" else " (%)"
    claims = PAPER_CLAIMS[task]["values"]
    columns = [
        ("variant", "---", lambda line: line.variant),
        (f"{lines[0].metric_name}{unit} mean", "---:", lambda line: _format_metric(task, line.mean)),
        ("std", "---:", lambda line: _format_metric(task, line.std)),
        ("runs", "---:", lambda line: str(line.n)),
        ("params", "---:", lambda line: f"{line.params / 1e6:.2f} M"),
        ("MACs/sample", "---:", lambda line: f"{line.macs / 1e6:.1f} M"),
        ("train s/run", "---:", lambda line: f"{line.train_seconds:.1f}"),
        ("vs base: mean diff [95% CI]", "---", lambda line: _difference_text(task, line)),
        ("seed's claim*", "---:", lambda line: str(claims.get(layers.get(line.variant).paper_name, ""))),
    ]
    return markdown_table(lines, columns)


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
    for task in dict.fromkeys(r["task"] for r in rows):
        out += [f"## {task}", "", *task_table(task, [r for r in rows if r["task"] == task]),
                "", f"*{PAPER_CLAIMS[task]['caption']}: the seed's numbers on the real data set, not measured here. "
                "Its 'OD-CNN' cites ODConv but describes rotated kernels, so its claim stands beside both.", ""]
    out += ["Plots: `metric_per_variant.png`, `metric_vs_macs.png`, `curves.png`. "
            "MACs are multiply-accumulates per sample (FLOPs = 2 x MACs).", ""]
    return "\n".join(out)


def write_report(rows: Sequence[dict], out: str | os.PathLike, command: str = "", wall_seconds=None,
                 device: str = "") -> Path:
    from .. import viz
    from ..files import atomic_write_text

    out = Path(out)
    if not rows:
        raise ValueError(f"no finished cells in {out}: nothing to report")
    atomic_write_text(out / "report.md", report_markdown(rows, command, wall_seconds, device))
    plot_to(viz.plot_metric_per_variant(rows), out / "metric_per_variant.png")
    plot_to(viz.plot_metric_vs_macs(rows), out / "metric_vs_macs.png")
    plot_to(viz.plot_curves(rows), out / "curves.png")
    return out / "report.md"
