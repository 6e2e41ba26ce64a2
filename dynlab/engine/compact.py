"""Weights stored small: a few bits a weight with one scale per output channel, or half precision.

The course models are committed to the repository, which every Binder launch clones, so their
weights are kept compact and restored to float32 when loaded:

- ``int8``, ``int6``, ``int5``: each kernel and linear weight (a floating tensor of two or more
  dimensions) is stored as ``q = round(w / scale)`` in [-L, L] with one float32 ``scale = max |w| / L``
  per output channel (per kernel and output channel for a unit's stacked kernels ``(K, C_out, ...)``),
  so the restored weight is ``scale * q``, within half a scale step of the original. L is 127, 31 or 15
  (``LEVELS``). ``q`` is held in an int8 tensor whatever L is: a file compressed after ``torch.save``
  (as the course models are) spends about as many bits on it as its levels need;
- ``half``: the same tensors in float16;
- everything else (biases, BatchNorm's parameters and statistics, counters) as it is: few values.

Whoever writes compact weights checks that the model still scores what it scored (the course models'
command re-evaluates each one and takes the smallest storage that keeps its test metric).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.unit import ConvUnit

#: from the smallest to the most precise
STORAGES = ("int5", "int6", "int8", "half")
#: how many steps each side of zero the integer storages have
LEVELS = {"int5": 15, "int6": 31, "int8": 127}


def stacked_kernel_names(model: nn.Module) -> set[str]:
    """State-dict names of the units' stacked kernels ``(K, C_out, C_in, *kernel)``: scaled per kernel and channel."""
    return {f"{name}.weight" if name else "weight" for name, module in model.named_modules()
            if isinstance(module, ConvUnit) and module.weight.dim() == module.dim + 3}


def _compactable(value: torch.Tensor) -> bool:
    return value.is_floating_point() and value.dim() >= 2


def compact_state(state: dict[str, torch.Tensor], storage: str = "int8", stacked: set[str] = frozenset()) -> dict:
    """``state`` (a ``state_dict``) in compact form: a dict of plain tensors that ``torch.load(weights_only=True)``
    reads. ``stacked``: names of stacked kernels (``stacked_kernel_names``)."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    compact = {}
    for name, value in state.items():
        value = value.detach().cpu()
        if not _compactable(value):
            compact[name] = {"value": value.clone()}
        elif storage == "half":
            compact[name] = {"half": value.half()}
        else:
            rows = value.shape[0] * value.shape[1] if name in stacked else value.shape[0]
            flat = value.float().reshape(rows, -1)
            levels = LEVELS[storage]
            scale = flat.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / levels
            q = torch.round(flat / scale[:, None]).clamp(-levels, levels).to(torch.int8)
            compact[name] = {"int8": q.reshape(value.shape), "scale": scale, "dtype": str(value.dtype)}
    return compact


def restore_state(compact: dict) -> dict[str, torch.Tensor]:
    """The ``state_dict`` that ``compact_state`` compacted, in the original floating types."""
    state = {}
    for name, entry in compact.items():
        if "value" in entry:
            state[name] = entry["value"]
        elif "half" in entry:
            state[name] = entry["half"].float()
        else:
            q, scale = entry["int8"], entry["scale"]
            dtype = getattr(torch, entry["dtype"].removeprefix("torch."))
            state[name] = (q.reshape(scale.shape[0], -1).float() * scale[:, None]).reshape(q.shape).to(dtype)
    return state


def compact_bytes(compact: dict) -> int:
    """Bytes of the tensors in ``compact`` (what the file holds, less the container's overhead)."""
    return sum(t.numel() * t.element_size() for entry in compact.values() for t in entry.values()
               if isinstance(t, torch.Tensor))
