"""The course models: every variant trained on every task in the course profile (seed 0), shipped compact.

Students should see trained layers the moment a notebook opens, and retrain when they choose to (as
the UvA deep-learning notebooks do). ``dynlab course-models`` trains the cells (``write_course_models``),
stores each best epoch compact (``dynlab.engine.compact``: the fewest bits a weight, 5, 6 or 8, or
half precision, that keep the re-evaluated test metric within ``TOLERANCE``; the file xz-compressed,
so 5-bit weights take about 5 bits), and writes ``manifest.json`` (each file's
sha256, storage, test metric, and the command, machine and torch that made them) and ``report.md``.
They are committed under ``checkpoints/course/``.

``load_course_model`` finds them in ``$DYNLAB_COURSE_MODELS``, in the checkout, or in the cache under
``DYNLAB_DATA``; outside a checkout it fetches them from the repository's raw-file URL
(``dynlab.about.raw_url``, or ``$DYNLAB_COURSE_MODELS_URL``), checks each file's sha256 against the
manifest before it appears, and caches it. Files are decompressed and read with ``torch.load(weights_only=True)``;
a file whose sha256 or model does not match the manifest is refused, naming the file.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import time
from pathlib import Path
from typing import Sequence

import torch

from .. import about, layers
from ..data.download import Mirror, MirrorsFailedError, data_root, fetch_mirrors, sha256sum
from ..data.tasks import TASKS
from ..engine import History, evaluate, load_checkpoint, model_fingerprint
from ..engine.checkpoint import check_fingerprint
from ..engine.compact import STORAGES, compact_bytes, compact_state, restore_state, stacked_kernel_names
from ..errors import CheckpointError, DynlabError
from ..files import atomic_write_bytes, atomic_write_text
from .baselines import trivial_baseline
from .cell import Cell
from .committed import checkout_folder, in_checkout
from .per_class import per_class
from .pipeline import Run, build_cell_model, cell_data, get_profile
from .runner import environment, read_rows, run_cells, run_dir

FORMAT = 2
#: where the course models are committed, relative to the repository
COMMITTED = "checkpoints/course"
MANIFEST = "manifest.json"
#: how far (as a fraction: 0.005 is half a percentage point) the stored model's test metric may move
TOLERANCE = 0.005
PROFILE = "quick"
SEED = 0


class CourseModelsUnavailable(DynlabError, RuntimeError):
    """The course models are neither here nor downloadable (offline, or not published at this ref)."""


def file_name(variant: str, task: str) -> str:
    return f"{task}-{variant}.pt.xz"


def read_stored(path: Path) -> dict:
    """What ``write_course_models`` stored in ``path``: plain tensors and numbers (``weights_only``)."""
    try:
        raw = lzma.decompress(Path(path).read_bytes())
    except lzma.LZMAError as error:
        raise CheckpointError(f"{path} is not an xz-compressed course model ({error}): delete it and load "
                              "again (or retrain)") from None
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def course_cell(variant: str, task: str) -> Cell:
    return Cell(task, variant, SEED, profile=PROFILE)


def _test(model, data, task: str) -> dict[str, float]:
    kwargs = {"ignore_index": data.ignore_index} if data.ignore_index is not None else {}
    return evaluate(model, data.test, task, device="cpu", **kwargs)


def _metric(model, data, task: str, metric: str) -> float:
    return float(_test(model, data, task)[metric])


# ---- writing ------------------------------------------------------------------------------------------

def _stored(model, data, cell: Cell, metric_name: str, float_metric: float):
    """The compact weights of ``model``: the smallest storage that keeps the test metric within TOLERANCE
    of the float model's (where none does, the one that comes closest)."""
    # a copy: load_state_dict writes into the very tensors that state_dict() returns
    state = {name: value.clone() for name, value in model.state_dict().items()}
    stacked = stacked_kernel_names(model)
    tried = []
    for storage in STORAGES:
        compact = compact_state(state, storage, stacked)
        model.load_state_dict(restore_state(compact))
        metric = _metric(model, data, cell.task, metric_name)
        tried.append((abs(metric - float_metric), compact, storage, metric))
        if tried[-1][0] <= TOLERANCE:
            break
    model.load_state_dict(state)
    return min(tried, key=lambda t: t[0])[1:]


def write_course_models(out: str | os.PathLike = COMMITTED, *, runs: str | os.PathLike = "runs/course-models",
                        variants: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                        epochs: int | None = None, limit: int | None = None, device=None, quiet: bool = False,
                        command: str = "") -> Path:
    """Train the course cells into ``runs`` (resumable) and write their compact checkpoints, the manifest
    and the report into ``out``. ``epochs`` and ``limit`` make a smoke set (the manifest says so).

    Models already in ``out``'s manifest that this call does not write are kept as they are (when that
    manifest is of the same profile, seed and settings), so a recipe change for one variant rewrites only
    its models; each entry records the command and time that wrote it."""
    started = time.time()
    variants, tasks = list(variants or layers.names()), list(tasks or TASKS)
    cells = [course_cell(v, t) for t in tasks for v in variants]
    run_cells(cells, runs, device=device, epochs=epochs, limit=limit, quiet=quiet, command=command,
              name="course-models")
    rows = {(r["variant"], r["task"]): r for r in read_rows(runs) if int(r["seed"]) == SEED}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    entries = []
    for cell in cells:
        row = rows[cell.variant, cell.task]
        data = cell_data(cell, limit)
        model = build_cell_model(cell, data)
        checkpoint = load_checkpoint(run_dir(runs, cell) / "best.pt", model)
        history = History.read_json(run_dir(runs, cell) / "history.json")
        float_metric = _metric(model, data, cell.task, row["metric_name"])
        compact, storage, metric = _stored(model, data, cell, row["metric_name"], float_metric)
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "variant": cell.variant, "task": cell.task, "storage": storage,
                    "fingerprint": model_fingerprint(model), "weights": compact,
                    "temperature": checkpoint.get("temperature"), "history": history.to_dict()}, buffer)
        name = file_name(cell.variant, cell.task)
        atomic_write_bytes(out / name, lzma.compress(buffer.getvalue()))
        entries.append({"file": name, "variant": cell.variant, "task": cell.task, "sha256": sha256sum(out / name),
                        "bytes": (out / name).stat().st_size, "weight_bytes": compact_bytes(compact),
                        "storage": storage, "metric_name": row["metric_name"], "metric": round(metric, 6),
                        "float_metric": round(float_metric, 6), "params": row["params"], "macs": row["macs"],
                        "epochs": row["epochs"], "train_seconds": row["train_seconds"],
                        "command": command, "written": written})
    env = environment()
    manifest = {"format": FORMAT, "profile": PROFILE, "seed": SEED, "epochs": epochs, "limit": limit,
                "command": command, "machine": env["machine"], "torch": env["torch"], "python": env["python"],
                "written": written, "minutes": round((time.time() - started) / 60, 1)}
    manifest["models"] = _in_order(_kept_entries(out, manifest, cells) + entries)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    atomic_write_text(out / "report.md", report(manifest))
    return out


def _kept_entries(out: Path, manifest: dict, cells: Sequence[Cell]) -> list[dict]:
    """The entries of ``out``'s manifest for models not among ``cells``, if it was written with the same
    settings as ``manifest`` (else none: a smoke set never mixes with the course models)."""
    path = out / MANIFEST
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    if any(old.get(key) != manifest[key] for key in ("format", "profile", "seed", "epochs", "limit")):
        return []
    writing = {(cell.variant, cell.task) for cell in cells}
    kept = []
    for entry in old["models"]:
        if (entry["variant"], entry["task"]) in writing:
            continue
        if not (out / entry["file"]).is_file() or sha256sum(out / entry["file"]) != entry["sha256"]:
            raise CheckpointError(f"{out / entry['file']} does not match {path}; write every model again "
                                  f"(dynlab course-models without --variants/--tasks) or restore the file from git")
        kept.append({"command": old.get("command", ""), "written": old.get("written", ""), **entry})
    return kept


def _in_order(entries: list[dict]) -> list[dict]:
    """Task by task, each task's variants in the registry's order."""
    names = layers.names()
    return sorted(entries, key=lambda e: (TASKS.index(e["task"]), names.index(e["variant"])))


def report(manifest: dict) -> str:
    """Markdown: what the manifest holds, model by model, with the storage and what it cost in metric."""
    total = sum(e["bytes"] for e in manifest["models"])
    smoke = (f" **Smoke set** (epochs {manifest['epochs']}, limit {manifest['limit']}): not the course models."
             if manifest["epochs"] or manifest["limit"] else "")
    writes = {}
    for e in manifest["models"]:
        writes.setdefault((e.get("command", manifest["command"]), e.get("written", manifest["written"])), []).append(e)
    if len(writes) > 1:
        made = "Written in parts: " + "; ".join(
            f"`{command or 'dynlab course-models'}` ({written}: {len(models)} model{'s' if len(models) > 1 else ''})"
            for (command, written), models in writes.items()) + "."
    else:
        made = f"Command: `{manifest['command'] or 'dynlab course-models'}`; written {manifest['written']}."
    lines = ["# The course models", "",
             f"{made} Profile {manifest['profile']}, seed {manifest['seed']}; {manifest['machine']}, "
             f"torch {manifest['torch']} (the last write's machine)." + smoke, "",
             f"{len(manifest['models'])} models, {total / 2**20:.1f} MiB in all. Each model's weights in the fewest "
             f"bits (5, 6 or 8, with a scale per output channel: int5, int6, int8) or half precision that keep its "
             f"test metric within {TOLERANCE * 100:.1f} points of the float model's (where none does, the closest); "
             f"files xz-compressed; the loader restores float32.", "",
             "| task | variant | test metric | as stored | float model | storage | MiB | params | epochs | train s |",
             "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for e in manifest["models"]:
        lines.append(f"| {e['task']} | {e['variant']} | {e['metric_name']} | {e['metric']:.4f} | "
                     f"{e['float_metric']:.4f} | {e['storage']} | {e['bytes'] / 2**20:.2f} | {e['params']:,} | "
                     f"{e['epochs']} | {e['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


# ---- finding and loading ------------------------------------------------------------------------------

def _cache() -> Path:
    return data_root() / "course-models" / about.BRANCH


def _base_url() -> str:
    return os.environ.get("DYNLAB_COURSE_MODELS_URL") or about.raw_url(COMMITTED)


def local_folder() -> Path | None:
    """Where the course models already are: ``$DYNLAB_COURSE_MODELS``, the checkout's, or the cache's."""
    if os.environ.get("DYNLAB_COURSE_MODELS"):
        return Path(os.environ["DYNLAB_COURSE_MODELS"])
    found = checkout_folder(COMMITTED, MANIFEST)
    if found is not None:
        return found
    return _cache() if (_cache() / MANIFEST).is_file() else None


def _download(name: str, folder: Path, sha256: str | None = None) -> Path:
    # a checkout's committed files are its only source: it does not reach for the network
    if in_checkout() and not os.environ.get("DYNLAB_COURSE_MODELS_URL"):
        raise CourseModelsUnavailable(f"this checkout has no {COMMITTED}/{MANIFEST}: `dynlab course-models` writes them")
    url = _base_url().rstrip("/") + "/" + name
    try:
        return fetch_mirrors([Mirror(url, sha256=sha256)], name, folder, what="a course model", quiet=True)
    except MirrorsFailedError as error:
        reason = "; ".join(f"{u}: {r}" for u, r in error.failures)
        raise CourseModelsUnavailable(f"the course models could not be fetched ({reason})") from None


def manifest(folder: Path | None = None) -> tuple[Path, dict]:
    """The folder holding the course models and their manifest (fetched into the cache if need be)."""
    folder = folder or local_folder()
    if folder is None:
        folder = _cache()
        _download(MANIFEST, folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CourseModelsUnavailable(f"no {MANIFEST} in {folder}")
    try:
        return folder, json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not a course-models manifest ({error}): delete it and load again") from None


def _entry(man: dict, variant: str, task: str, path: Path) -> dict:
    for entry in man["models"]:
        if entry["variant"] == variant and entry["task"] == task:
            return entry
    raise CourseModelsUnavailable(f"{path} has no course model for {variant} on {task}")


def _stored_model(variant: str, task: str, folder: Path | None, data) -> tuple:
    """(manifest, its entry, the stored file's contents, the data, the model with its weights) of a course model."""
    folder, man = manifest(folder)
    entry = _entry(man, variant, task, folder / MANIFEST)
    path = folder / entry["file"]
    if not path.is_file():
        _download(entry["file"], folder, entry["sha256"])
    if sha256sum(path) != entry["sha256"]:
        raise CheckpointError(f"{path} does not match the sha256 in {folder / MANIFEST}: it was changed or damaged; "
                              "delete it and load again (or retrain)")
    stored = read_stored(path)
    cell = course_cell(variant, task)
    data = data if data is not None else cell_data(cell, man.get("limit"))
    model = build_cell_model(cell, data)
    if stored.get("format") != FORMAT or stored.get("variant") != variant or stored.get("task") != task:
        raise CheckpointError(f"{path} is not the course model of {variant} on {task} (format {FORMAT}): "
                              "delete it and load again (or retrain)")
    check_fingerprint(stored["fingerprint"], model, path)
    model.load_state_dict(restore_state(stored["weights"]))
    if stored.get("temperature") is not None:
        layers.set_temperature(model, stored["temperature"])
    return man, entry, {**stored, "path": path}, data, model


def load_course_network(variant: str, task: str, *, folder: Path | None = None, data=None) -> torch.nn.Module:
    """The shipped ``variant`` trained on ``task``, as a model in eval mode on the CPU, without the
    re-evaluation on the test split that ``load_course_model`` does (what the explorer needs: a model to
    look at, at once). ``data``: the task's ``TaskData``, if the caller has it (it sets the model's shape)."""
    return _stored_model(variant, task, folder, data)[4].eval()


def load_course_model(variant: str, task: str, *, folder: Path | None = None, quiet: bool = False) -> Run:
    """The shipped ``variant`` trained on ``task``, re-evaluated on the test split here.

    Its history is the training run's; its test metric is the one measured now, and a line is printed
    if that differs from the manifest's by more than ``TOLERANCE``.
    """
    man, entry, stored, data, model = _stored_model(variant, task, folder, None)
    cell = course_cell(variant, task)
    history = History.from_dict(stored["history"])
    test = _test(model, data, task)
    metric = float(test[entry["metric_name"]])
    if abs(metric - entry["metric"]) > TOLERANCE and not quiet:
        print(f"{variant} on {task}: test {entry['metric_name']} {metric:.4f} here, {entry['metric']:.4f} in the "
              f"manifest ({man['torch']}, {man['machine']})")
    history.test = test
    profile = get_profile(PROFILE)
    return Run(cell, model, history, data, entry["params"], entry["macs"], "cpu", len(data.train), None,
               {"course_model": str(stored["path"]), "storage": entry["storage"]}, trivial_baseline(data), {},
               per_class(model, data, batch_size=profile.task(task).batch_size))
