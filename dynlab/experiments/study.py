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

from .. import layers, paper
from ..data.tasks import TASKS
from ..engine import load_checkpoint
from .attention import meets_goals
from .baselines import NEAR, near_baseline
from .cell import Cell, cell_from_row
from .committed import results_folder
from .pipeline import build_model, get_profile, load_data, train_cell
from .report import Line, markdown_table, plot_to, summarise
from .runner import read_rows, run_cells, run_dir, write_csv

#: the paper's own numbers (``dynlab.paper``), shown beside ours and always labelled as its claims
PAPER_CLAIMS = {
    "classification": {"caption": "seed Table 3: Tiny ImageNet top-1 accuracy (%), 224x224, 30 epochs",
                       "values": paper.by_variant("3", "accuracy")},
    "segmentation": {"caption": "seed Table 4: Pascal VOC 2012 mIoU (%)", "values": paper.by_variant("4", "miou")},
    "timeseries": {"caption": "seed Table 4b: Adiac 10-fold accuracy, mean (population std)",
                   "values": {name: f"{mean:.3f} ({paper.by_variant('4b', 'std_accuracy')[name]:.3f})"
                              for name, mean in paper.by_variant("4b", "mean_accuracy").items()}},
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


def committed_results(name: str = "study-quick") -> Path | None:
    """The committed study folder ``results/NAME``: the checkout's, or the copy a built package carries
    (``committed.results_folder``); None where there is neither."""
    folder = results_folder(f"{name}/results.csv")
    return folder / name if folder is not None else None


def committed_seconds(task: str, variant: str = "base") -> float | None:
    """``variant``'s mean training seconds per run on ``task`` in the committed quick study, or None
    where there is none (what ``profiles.choose`` scales into an estimate for a larger profile)."""
    folder = committed_results()
    if folder is None:
        return None
    seconds = [r["train_seconds"] for r in read_results(folder)
               if r["task"] == task and r["variant"] == variant and r["profile"] == "quick"]
    return sum(seconds) / len(seconds) if seconds else None


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


def baseline_of(rows: Sequence[dict]) -> tuple[str, float] | None:
    """The trivial answer of these rows' test splits (its name, its mean over the rows), if recorded."""
    given = [r["baseline"] for r in rows if r.get("baseline")]
    if not given:
        return None
    return given[0]["name"], sum(b["value"] for b in given) / len(given)


def near_trivial(line: Line, baseline: tuple[str, float] | None) -> bool:
    return baseline is not None and near_baseline(line.mean, baseline[1])


def task_table(task: str, rows: Sequence[dict]) -> list[str]:
    lines = summarise(rows)
    unit = "" if task == "timeseries" else " (%)"
    claims = PAPER_CLAIMS[task]["values"]
    baseline = baseline_of(rows)

    def name(line: Line) -> str:
        return line.variant + (" (near trivial)" if near_trivial(line, baseline) else "")

    columns = [
        ("variant", "---", name),
        (f"{lines[0].metric_name}{unit} mean", "---:", lambda line: _format_metric(task, line.mean)),
        ("std", "---:", lambda line: _format_metric(task, line.std)),
        ("runs", "---:", lambda line: str(line.n)),
        ("params", "---:", lambda line: f"{line.params / 1e6:.2f} M"),
        ("MACs/sample", "---:", lambda line: f"{line.macs / 1e6:.1f} M"),
        ("train s/run", "---:", lambda line: f"{line.train_seconds:.1f}"),
        ("vs base: mean diff [95% CI]", "---", lambda line: _difference_text(task, line)),
        ("seed's claim*", "---:", lambda line: str(claims.get(layers.get(line.variant).paper_name, ""))),
    ]
    table = markdown_table(lines, columns)
    if baseline is not None:
        cells = [f"trivial baseline ({baseline[0]})", _format_metric(task, baseline[1])] + [""] * (len(columns) - 2)
        table.insert(2, "| " + " | ".join(cells) + " |")
    return table


def flagged_text(task: str, rows: Sequence[dict]) -> list[str]:
    """A sentence naming the variants within ``NEAR`` of the trivial answer (none: nothing)."""
    baseline = baseline_of(rows)
    near = [line.variant for line in summarise(rows) if near_trivial(line, baseline)]
    if not near:
        return []
    points = f"{NEAR:.2f}" if task == "timeseries" else f"{100 * NEAR:.0f} points"
    return [f"**Near the trivial answer** (within {points} of '{baseline[0]}'): {', '.join(near)}. "
            "These models have learned next to nothing on this task; do not read their attention as trained.", ""]


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def attention_table(rows: Sequence[dict]) -> list[str]:
    """Per variant (mean over its runs): the attention figures of ``experiments.attention``."""
    out = ["| variant | spread (unit) | probe acc. / chance | hard: open rate (budget), per-class range | "
           "hard: MACs executed / batch union / dense (M) | orient: TV distance (pair) | goal met |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("attention"):
            by_variant.setdefault(r["variant"], []).append(r["attention"])
    for variant in layers.names():
        summaries = by_variant.get(variant)
        if not summaries:
            continue
        get = lambda key: _mean([s.get(key) for s in summaries])  # noqa: E731
        first = summaries[0]
        cells = [variant, "", "", "", "", "", ""]
        if get("spread") is not None:
            cells[1] = f"{get('spread'):.3f} ({first['spread_unit']})"
        if get("probe") is not None:
            cells[2] = f"{get('probe'):.2f} / {get('chance'):.2f} ({first['probe_unit']})"
        if get("open_rate") is not None:
            cells[3] = f"{get('open_rate'):.2f} ({first['budget']}), {get('class_open_range'):.2f}"
            cells[4] = f"{get('macs_executed') / 1e6:.1f} / {get('macs_union') / 1e6:.1f} / {get('macs') / 1e6:.1f}"
        if get("orientation_tv") is not None:
            cells[5] = f"{get('orientation_tv'):.2f} ({first['orientation_pair']}, {first['orientation_unit']})"
        verdicts = [meets_goals(s, variant) for s in summaries]
        if not all(v is None for v in verdicts):
            # the goal is on the mean over the runs; how many single runs meet it says how firmly
            means = {key: get(key) for key in first if isinstance(first[key], (int, float))}
            verdict = meets_goals({**first, **means}, variant)
            cells[6] = f"{'yes' if verdict else 'no'} ({sum(bool(v) for v in verdicts)}/{len(verdicts)} runs)"
        else:
            cells[6] = "n/a"
        out.append("| " + " | ".join(cells) + " |")
    return out if len(out) > 2 else []


def per_class_table(rows: Sequence[dict]) -> list[str]:
    """Classes as rows, variants as columns: each class's test accuracy (IoU for segmentation) in %,
    the mean over a variant's runs; empty where the rows record none (runs older than the record)."""
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("per_class"):
            by_variant.setdefault(r["variant"], []).append(r["per_class"])
    variants = [v for v in layers.names() if v in by_variant]
    if not variants:
        return []
    classes = list(next(iter(by_variant.values()))[0])
    out = ["| class | " + " | ".join(variants) + " |", "| --- |" + " ---: |" * len(variants)]
    for name in classes:
        cells = []
        for variant in variants:
            mean = _mean([values.get(name) for values in by_variant[variant]])
            cells.append("" if mean is None else f"{100 * mean:.1f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


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
        mine = [r for r in rows if r["task"] == task]
        out += [f"## {task}", "", *task_table(task, mine),
                "", f"*{PAPER_CLAIMS[task]['caption']}: the seed's numbers on the real data set, not measured here. "
                "Its 'OD-CNN' cites ODConv but describes rotated kernels, so its claim stands beside both.", "",
                *flagged_text(task, mine)]
        table = attention_table(mine)
        if table:
            out += [f"### {task}: the attention on the test split", "",
                    "Spread: the mean over a unit's attention entries of their standard deviation across test samples "
                    "(the unit with the largest). Probe: a linear probe's 5-fold cross-validated accuracy at predicting "
                    "the label from a unit's attention (the best unit), beside chance (the commonest label's share). "
                    "Goal met, judged on the figures' mean over the runs (in brackets: how many single runs meet "
                    "it): spread >= 0.05 and probe >= 3x chance; hard: open rate within 0.1 of the budget, "
                    "per-class range >= 0.05 and fewer executed MACs; orient: TV distance >= 0.2 "
                    "(`dynlab.experiments.attention`).", "", *table, ""]
        classes = per_class_table(mine) if task != "timeseries" else []  # Adiac's 37 classes stay in the cells
        if classes:
            what = "IoU" if task == "segmentation" else "accuracy"
            out += [f"### {task}: per class", "", f"Test {what} (%) of each class, the mean over a variant's runs "
                    "(`dynlab.experiments.per_class`).", "", *classes, ""]
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
