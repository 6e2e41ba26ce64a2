"""ODConv on Adiac with and without the BatchNorm in its attention trunk.

    python benchmarks/adiac_odconv_norm.py --seeds 0 1 2 --jobs 2
    python benchmarks/adiac_odconv_norm.py --variants odconv --seeds 0 --epochs 2   # a smoke run

In the grid (``results/``), ``odconv`` and ``odconv4x`` did not fit their training series (last-epoch
training accuracy 0.5-0.8 against 0.99 for ``base``). This script trains the same standard-split
cells, same recipe and seeds, with ``attention_norm="none"`` (``dynlab.layers.ODConv``) into
``--out``, and prints their test accuracy beside the grid's cells of the same seeds: the reference
design (``batch``) and ``base``, with the 95% interval of the paired difference. A re-run skips
finished cells (they resume where they stopped).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from dynlab import adiac
from dynlab.adiac.run import environment
from dynlab.device import pick_device
from dynlab.metrics import paired_difference

UNIT_OPTIONS = {"attention_norm": "none"}


def _run(variant: str, seed: int, out: str, device: str, epochs, threads: int) -> dict:
    torch.set_num_threads(threads)
    cell = adiac.Cell("standard", "tsresnet", variant, seed)
    return adiac.train_cell(cell, out, device=device, epochs=epochs, unit_options=UNIT_OPTIONS)


def last_train_accuracy(out: Path, variant: str, seed: int) -> float:
    """Training accuracy (training mode, augmented series) in the run's last epoch."""
    history = json.loads((out / "runs" / adiac.Cell("standard", "tsresnet", variant, seed).name
                          / "history.json").read_text())
    return history["records"][-1]["train_metric"]


def _difference(mine: list[float], theirs: dict[int, float], seeds) -> str:
    if not all(s in theirs for s in seeds):
        return "not in the grid for every seed"
    if len(seeds) < 2:
        return f"{np.mean(mine) - theirs[seeds[0]]:+.3f} (one seed: no interval)"
    d = paired_difference(mine, [theirs[s] for s in seeds])
    return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=["odconv", "odconv4x"], default=["odconv", "odconv4x"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="runs/adiac-odconv-norm")
    parser.add_argument("--results", default=None, help="the grid's results folder (default: the committed one)")
    args = parser.parse_args(argv)
    device = str(pick_device(args.device))
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    started = time.time()
    rows = {}
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {(v, s): pool.submit(_run, v, s, args.out, device, args.epochs, threads)
                   for v in args.variants for s in args.seeds}
        for (variant, seed), future in futures.items():
            row = rows[variant, seed] = future.result()
            print(f"{variant} (attention_norm none) seed {seed}: test {row['metric']:.3f}, val {row['val_metric']:.3f}, "
                  f"{row['train_seconds']:.0f} s on {row['device']}", flush=True)
    grid = {}
    for row in adiac.read_results("standard", args.results):
        grid.setdefault(row["variant"], {})[int(row["seed"])] = float(row["metric"])
    env = environment()
    print(f"\n{len(rows)} cells in {(time.time() - started) / 60:.1f} min wall, {args.jobs} jobs; "
          f"torch {env['torch']}, {env['machine']}; epochs {args.epochs or 'as in the recipe'}")
    print("\n| variant | attention trunk | seeds | test accuracy, mean (std) | last-epoch training accuracy "
          "| vs the grid's (BatchNorm), paired 95% CI | vs base, paired 95% CI |\n| --- | --- | --- | ---: | ---: | --- | --- |")
    for variant in args.variants:
        mine = [rows[variant, s]["metric"] for s in args.seeds]
        train = [last_train_accuracy(Path(args.out), variant, s) for s in args.seeds]
        print(f"| {variant} | FC -> ReLU (none) | {' '.join(map(str, args.seeds))} | {np.mean(mine):.3f} "
              f"({np.std(mine):.3f}) | {np.mean(train):.2f} | {_difference(mine, grid.get(variant, {}), args.seeds)} "
              f"| {_difference(mine, grid.get('base', {}), args.seeds)} |")
        if all(s in grid.get(variant, {}) for s in args.seeds):
            theirs = [grid[variant][s] for s in args.seeds]
            print(f"| {variant} | FC -> BN -> ReLU (reference; the grid's) | {' '.join(map(str, args.seeds))} | "
                  f"{np.mean(theirs):.3f} ({np.std(theirs):.3f}) | | | "
                  f"{_difference(theirs, grid.get('base', {}), args.seeds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
