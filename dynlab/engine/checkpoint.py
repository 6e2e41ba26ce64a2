"""Checkpoints: what model they belong to (the fingerprint), safe loading, atomic saving, random state.

A run folder holds ``last.pt`` (everything needed to resume: weights, optimizer, scheduler, scaler,
epoch, step, every process's random state, the history) and ``best.pt`` (the best epoch's weights
and what its callbacks need to use them, e.g. the temperature it was validated at).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..files import atomic_write_bytes
from ..layers import set_temperature
from .distributed import unwrap

CHECKPOINT_FORMAT = 1
#: model classes renamed since checkpoints were first written: old name -> new name
RENAMED_MODELS = {"SeedCNN": "PaperCNN"}


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written for another model (variant, width or class count)."""


def model_fingerprint(model: nn.Module) -> dict:
    """What identifies a model's shape: class name, variant (when the model has one), parameter shapes."""
    model = unwrap(model)
    return {
        "model": type(model).__name__,
        "variant": getattr(model, "variant", None),
        "parameters": [[name, list(p.shape)] for name, p in model.named_parameters()],
    }


def _describe_fingerprint(fp: dict) -> str:
    variant = f" (variant {fp['variant']!r})" if fp.get("variant") else ""
    values = sum(math.prod(shape) for _, shape in fp["parameters"])
    return f"{fp['model']}{variant}, {len(fp['parameters'])} parameter tensors, {values:,} values"


def check_fingerprint(saved: dict, model: nn.Module, path: str | os.PathLike) -> None:
    """Raise ``CheckpointMismatchError`` naming both models if ``saved`` does not describe ``model``."""
    current = model_fingerprint(model)
    saved = {**saved, "model": RENAMED_MODELS.get(saved["model"], saved["model"])}
    if saved == current:
        return
    difference = ""
    saved_shapes = {n: tuple(s) for n, s in saved["parameters"]}
    current_shapes = {n: tuple(s) for n, s in current["parameters"]}
    for name in list(saved_shapes) + [n for n in current_shapes if n not in saved_shapes]:
        if saved_shapes.get(name) != current_shapes.get(name):
            difference = (f"\n  first difference: parameter {name!r} is "
                          f"{list(saved_shapes[name]) if name in saved_shapes else 'absent'} in the checkpoint and "
                          f"{list(current_shapes[name]) if name in current_shapes else 'absent'} here")
            break
    raise CheckpointMismatchError(
        f"checkpoint {path} was written for a different model:\n"
        f"  checkpoint: {_describe_fingerprint(saved)}\n"
        f"  this model: {_describe_fingerprint(current)}{difference}\n"
        "Build the same model to resume or load it, or use another output folder for a new model."
    )


def tensor_checksum(obj: Any) -> str:
    """sha256 over every tensor in ``obj`` (nested dicts and lists), with its place, dtype and shape."""
    digest = hashlib.sha256()

    def walk(value, where: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{where}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                if not (where == "" and key == "checksum"):
                    walk(value[key], f"{where}/{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{where}/{i}")

    walk(obj, "")
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint's contents, safely (``weights_only=True``), its tensors checked against its checksum.

    A file that is empty, cut short, damaged or not one of ``fit``'s raises ``CheckpointError`` naming
    it; one written before checkpoints carried a checksum loads with a one-line warning.
    """
    path = Path(path)
    what = "delete it and train again, or put back a good copy"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001 - EOFError, zip and pickle errors: all mean the file is unusable
        kind = "empty" if path.stat().st_size == 0 else "cut short or damaged"
        raise CheckpointError(f"could not read checkpoint {path} ({kind}: {type(error).__name__}): {what}") from None
    if not isinstance(checkpoint, dict) or "fingerprint" not in checkpoint or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by dynlab's fit (no model fingerprint): {what}")
    if "checksum" not in checkpoint:
        warnings.warn(f"{path} was written before checkpoints carried a checksum: loaded without checking it",
                      stacklevel=2)
    elif tensor_checksum(checkpoint) != checkpoint["checksum"]:
        raise CheckpointError(f"{path} is damaged: its tensors do not match the checksum written with them; {what}")
    return checkpoint


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """Read a checkpoint written by ``fit`` (``best.pt`` or ``last.pt``): see ``read_checkpoint``.

    With ``model``, check that the checkpoint was written for this model and load its weights, and the
    attention temperature its epoch was validated at (``best.pt`` of a model with a temperature schedule:
    weights of an early epoch behave as validated only at that epoch's temperature).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if model is not None:
        check_fingerprint(checkpoint["fingerprint"], model, path)
        unwrap(model).load_state_dict(checkpoint["model"])
        if checkpoint.get("temperature") is not None:
            set_temperature(unwrap(model), checkpoint["temperature"])
    return checkpoint


def save_checkpoint(obj: dict, path: Path) -> None:
    """Write ``obj`` with the checksum of its tensors, atomically (``dynlab.files``): a crash or a full
    disk never leaves a half-written checkpoint. Serialised in memory first, so that a full disk is an
    ``OSError`` of the write (``DiskFullError``), not an error inside torch's zip writer."""
    buffer = io.BytesIO()
    torch.save({**obj, "checksum": tensor_checksum(obj)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def check_run_folder(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run over a folder that already holds one, unless told to resume or replace it."""
    existing = [name for name in ("last.pt", "best.pt", "history.json") if (out_dir / name).exists()]
    if existing and not resume and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a training run ({', '.join(existing)}); nothing was changed. "
            "Continue (or reload) it with resume=True (--resume), replace it with overwrite=True (--overwrite), "
            "or choose another output folder."
        )


def rng_state() -> dict:
    """This process's random generators as tensors and plain types (loadable with weights_only=True)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: torch seeds itself and ``random`` per worker; numpy needs this."""
    np.random.seed(torch.initial_seed() % 2 ** 32)
