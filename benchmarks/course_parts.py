"""Where an attention variant's extra time goes in its course model: its attention, or the rest of its units.

``python -m benchmarks course --parts`` times each variant three ways beside ``base``, in one process:

- as it is;
- with every unit's attention replayed: the attention (dyconv's kernel attention, odconv's four
  heads, hard's gates) returns, without being computed, what it computed on one forward of the same
  batch before the timing; in training it then has no backward and its parameters get no update;
- with every unit replaced by a static convolution of its shape (its first kernel; ``hard``'s
  ``convolve``, its own BatchNorm included).

The differences split the variant's extra time over ``base`` into its attention (as it is - replayed),
the rest of its units (replayed - static: the per-sample product, ``hard``'s gate multiply) and what
remains (static - base: what the model has outside its units, e.g. more parameters for the optimizer to
skip). Each part is timed in the model, where a small operation costs more than in a loop of its own:
the convolutions around it have pushed the interpreter's and PyTorch's data out of the caches.
"""
from __future__ import annotations

import contextlib
import statistics

import torch

from dynlab.kernels.dyconv import FastDynamicConv
from dynlab.kernels.hard_attention import FastGatedConv
from dynlab.kernels.odconv import FastODConv

VARIANTS = ("hard", "dyconv", "odconv", "odconv4x")
SETTINGS = ("as it is", "attention replayed", "static units")


def attention_call(unit: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """(object, method name) of the call that computes ``unit``'s attention in its current mode."""
    if isinstance(unit, FastODConv):
        return unit.attention, "forward"
    if isinstance(unit, FastDynamicConv):
        return unit, "kernel_attention"
    if isinstance(unit, FastGatedConv):
        return unit, "gates" if unit.training else "_open_gates"
    raise TypeError(f"no attention to replay in {type(unit).__name__}")


def units_of(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, (FastDynamicConv, FastODConv, FastGatedConv))]


@contextlib.contextmanager
def instead(pairs):
    """Set each (object, name, function) as an instance attribute for the block, then remove it again."""
    for owner, name, function in pairs:
        setattr(owner, name, function)
    try:
        yield
    finally:
        for owner, name, _ in pairs:
            delattr(owner, name)


def recorded_attention(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Each unit's attention on one forward of ``x`` in the model's current mode, computed without gradients."""
    seen = {}

    def recorder(unit, method):
        def record(*args):
            seen[unit] = out = method(*args)
            return out
        return record

    calls = [(*attention_call(u), u) for u in units_of(model)]
    with torch.no_grad(), instead([(owner, name, recorder(u, getattr(owner, name))) for owner, name, u in calls]):
        model(x)
    return seen


@contextlib.contextmanager
def setting(model: torch.nn.Module, name: str, x: torch.Tensor):
    """The model in one of ``SETTINGS`` for the block."""
    if name == "as it is":
        yield
        return
    units = units_of(model)
    if name == "attention replayed":
        recorded = recorded_attention(model, x)
        pairs = [(*attention_call(u), lambda *args, out=recorded[u]: out) for u in units]
    else:
        pairs = [(u, "forward", u.convolve if isinstance(u, FastGatedConv)
                  else lambda x, u=u: u.conv(x, u.weight[0])) for u in units]
    for unit in units:
        unit.aux_term = None  # hard's budget term from an earlier forward: neither setting computes it
    with instead(pairs):
        yield


def times_by_setting(step, base, repeats: int, mode: str) -> dict[str, float]:
    """Median seconds of ``mode`` ("train" or "infer") for base and for ``step``'s model in each setting."""
    times = {name: [] for name in ("base", *SETTINGS)}
    step.model.train(mode == "train")
    for r in range(repeats):
        order = ["base", *SETTINGS]
        for name in order[r % len(order):] + order[:r % len(order)]:
            if name == "base":
                times[name].append(getattr(base, mode)())
                continue
            with setting(step.model, name, step.x):  # records in the mode the last step left (``mode``'s)
                times[name].append(getattr(step, mode)())
    return {name: statistics.median(t) for name, t in times.items()}


def table(steps: dict, repeats: int) -> str:
    """Markdown: for each variant and mode, its extra time over base split into attention, rest of units, outside."""
    lines = ["| variant | mode | base ms | variant ms | attention replayed ms | static units ms | "
             "attention | rest of units | outside units |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    base = steps["base"]
    for variant, step in steps.items():
        if variant == "base":
            continue
        for mode in ("train", "infer"):
            t = times_by_setting(step, base, repeats, mode)
            extra = t["as it is"] - t["base"]
            parts = (t["as it is"] - t["attention replayed"], t["attention replayed"] - t["static units"],
                     t["static units"] - t["base"])
            shares = " | ".join(f"{1e3 * p:.1f} ms ({p / extra:.0%})" for p in parts)
            lines.append(f"| {variant} | {mode} | {1e3 * t['base']:.1f} | {1e3 * t['as it is']:.1f} | "
                         f"{1e3 * t['attention replayed']:.1f} | {1e3 * t['static units']:.1f} | {shares} |")
    return "\n".join(lines)
