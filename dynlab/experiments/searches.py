"""Experiments beside the Adiac grid, as configurations of it: the recipe search and the ODConv-norm comparison.

``dynlab search recipes`` trains ``tsresnet`` ``base`` on the standard split with each candidate of
``profiles.TIMESERIES_RECIPES`` (one grid folder per candidate) and chooses on the **validation**
accuracy alone (mean over seeds, at each run's best validation epoch); the test accuracy is printed
beside it for the record and takes no part in the choice. ``results/adiac_recipes.md`` holds the run
that chose the ``full`` profile's recipe.

``dynlab search odconv-norm`` trains the standard-split ``odconv`` and ``odconv4x`` cells with
``attention_norm="none"`` (no BatchNorm in the attention trunk) and sets them beside the grid's cells
of the same seeds, the reference design and ``base``, with the paired 95% intervals.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import profiles
from ..metrics import paired_difference
from .adiac import read_results, tsresnet_cell
from .runner import environment, read_rows, run_cells, run_dir

NORM_OPTIONS = {"attention_norm": "none"}


def recipe_search(recipes: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2), *,
                  out: str | os.PathLike = "runs/adiac-recipes", jobs: int = 1, device=None,
                  epochs: int | None = None, quiet: bool = False, command: str = "") -> str:
    """Train every candidate (resumable, one folder each) and return the markdown table and the choice."""
    recipes = list(recipes or profiles.TIMESERIES_RECIPES)
    out = Path(out)
    summary = []
    for recipe in recipes:
        folder = out / recipe
        run_cells([tsresnet_cell("standard", "base", s, recipe=recipe) for s in seeds], folder, jobs=jobs,
                  device=device, epochs=epochs, quiet=quiet, command=command, name=recipe)
        mine = [r for r in read_rows(folder) if int(r["seed"]) in seeds]
        summary.append((float(np.mean([r["val_metric"] for r in mine])), recipe, mine))
    lines = ["| recipe | runs | validation accuracy, mean (chooses) | test accuracy, mean (for the record) | "
             "test std | train s/run |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for val, recipe, mine in sorted(summary, reverse=True):
        tests = [r["metric"] for r in mine]
        lines.append(f"| {recipe} | {len(mine)} | {val:.3f} | {np.mean(tests):.3f} | {np.std(tests):.3f} | "
                     f"{np.mean([r['train_seconds'] for r in mine]):.0f} |")
    best = max(val for val, _, _ in summary)
    tied = [recipe for val, recipe, _ in summary if val == best]
    if len(tied) > 1:  # the rule the committed choice was made with: the last name in alphabetical order
        lines += ["", f"tied on validation accuracy: {', '.join(sorted(tied))}; the tie goes to the last name in "
                  "alphabetical order (a fixed rule, not a measurement)"]
    lines += ["", f"chosen on validation accuracy: {max(summary)[1]}"]
    return "\n".join(lines)


def _difference(mine: list[float], theirs: dict[int, float], seeds) -> str:
    if not all(s in theirs for s in seeds):
        return "not in the grid for every seed"
    if len(seeds) < 2:
        return f"{np.mean(mine) - theirs[seeds[0]]:+.3f} (one seed: no interval)"
    d = paired_difference(mine, [theirs[s] for s in seeds])
    return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def odconv_norm(variants: Sequence[str] = ("odconv", "odconv4x"), seeds: Sequence[int] = (0, 1, 2), *,
                out: str | os.PathLike = "runs/adiac-odconv-norm", results: str | os.PathLike | None = None,
                jobs: int = 1, device=None, epochs: int | None = None, quiet: bool = False, command: str = "") -> str:
    """Train the cells without attention BatchNorm and return the markdown comparison with the grid's."""
    started = time.time()
    cells = {(v, s): tsresnet_cell("standard", v, s, options=NORM_OPTIONS) for v in variants for s in seeds}
    run_cells(list(cells.values()), out, jobs=jobs, device=device, epochs=epochs, quiet=quiet, command=command,
              name="odconv-norm")
    rows = {(r["variant"], int(r["seed"])): r for r in read_rows(out)}
    grid: dict[str, dict[int, float]] = {}
    for row in read_results("standard", results):
        grid.setdefault(row["variant"], {})[int(row["seed"])] = float(row["metric"])
    env = environment()
    lines = [f"{len(cells)} cells in {(time.time() - started) / 60:.1f} min wall, {jobs} jobs; torch {env['torch']}, "
             f"{env['machine']}; epochs {epochs or 'as in the recipe'}", "",
             "| variant | attention trunk | seeds | test accuracy, mean (std) | last-epoch training accuracy "
             "| vs the grid's (BatchNorm), paired 95% CI | vs base, paired 95% CI |",
             "| --- | --- | --- | ---: | ---: | --- | --- |"]
    for variant in variants:
        mine = [rows[variant, s]["metric"] for s in seeds]
        train = [json.loads((run_dir(out, cells[variant, s]) / "history.json").read_text())["records"][-1]["train_metric"]
                 for s in seeds]
        lines.append(f"| {variant} | FC -> ReLU (none) | {' '.join(map(str, seeds))} | {np.mean(mine):.3f} "
                     f"({np.std(mine):.3f}) | {np.mean(train):.2f} | {_difference(mine, grid.get(variant, {}), seeds)} "
                     f"| {_difference(mine, grid.get('base', {}), seeds)} |")
        if all(s in grid.get(variant, {}) for s in seeds):
            theirs = [grid[variant][s] for s in seeds]
            lines.append(f"| {variant} | FC -> BN -> ReLU (reference; the grid's) | {' '.join(map(str, seeds))} | "
                         f"{np.mean(theirs):.3f} ({np.std(theirs):.3f}) | | | "
                         f"{_difference(theirs, grid.get('base', {}), seeds)} |")
    return "\n".join(lines)
