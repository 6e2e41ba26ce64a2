"""What one row of the explorer's picture shows, computed: no widgets and no drawing here.

A ``View`` is every choice the controls make; ``compute_row`` runs one model on one sample under
those choices (one forward that records the attention, one Grad-CAM, and for models with gates one
count of the MACs they execute) and returns a ``Row``, which ``picture`` draws and describes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import flops, viz
from ..device import inputs_for
from ..layers import ATTENTION_KINDS, AttentionRecorder, collect_attention
from . import knobs
from .predictions import largest_foreground_class


def attention_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose attention can be shown (conv units and post-block attention)."""
    return [name for name, m in model.named_modules() if isinstance(m, AttentionRecorder)]


@dataclass(frozen=True)
class View:
    """Everything the controls choose. ``target``: "predicted", "true" or a class index; ``temperature``
    None keeps the model's own; ``rotation`` in quarter turns."""

    variant: str
    task: str
    layer: str | None
    kind: str | None
    sample: int
    overlay: bool = True
    target: str | int = "predicted"
    compare: str | None = None
    temperature: float | None = None
    gate_offset: float = 0.0
    rotation: int = 0


@dataclass
class Row:
    """One model on one sample: what the picture draws in one row and the caption says about it."""

    variant: str
    layer: str | None
    layer_note: str            # how a compared model's layer was chosen ("" for the main row)
    kind: str | None           # None: the layer records no attention (a static convolution)
    value: torch.Tensor | None  # that kind's attention for this sample, without the batch axis
    kernel_size: tuple[int, ...] | None
    x: torch.Tensor            # the input as the model saw it (C, *S)
    target: torch.Tensor       # its label, or its mask (H, W)
    output: torch.Tensor       # logits (classes,) or (classes, H, W), on the CPU
    cam: np.ndarray | None
    cam_class: int | None
    cam_choice: str            # how that class was chosen, in a word: predicted, true or chosen
    cam_reason: str            # the same, in a clause
    temperature: float | None = None
    gate_offset: float | None = None
    macs: tuple[int, int] | None = None  # (dense, executed) MACs for this sample, models with gates

    @property
    def segmentation(self) -> bool:
        return self.output.dim() == 3

    @property
    def predicted(self) -> torch.Tensor:
        return self.output.argmax(0)


def recorded_kinds(attention: dict[str, torch.Tensor]) -> list[str]:
    """The kinds a unit recorded, in ``ATTENTION_KINDS``' order."""
    return [kind for kind in ATTENTION_KINDS if kind in attention]


def equivalent_layer(names: Sequence[str], layer: str | None) -> tuple[str | None, str]:
    """The layer of another model (``names``) that corresponds to ``layer``, and how it was chosen: the
    same name; else the last unit of the same block (the longest shared name prefix: a post-block SE
    ``layer2.1.se`` maps to ``layer2.1.conv2``, the unit just before it); else the middle unit."""
    if not names:
        return None, "this model has no units to show"
    if layer in names:
        return layer, "same layer"
    parts = (layer or "").split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut]) + "."
        same_block = [n for n in names if n.startswith(prefix)]
        if same_block:
            return same_block[-1], f"nearest to {layer}"
    return names[len(names) // 2], f"no equivalent of {layer}: its middle unit"


def forward_with_attention(model: nn.Module, x: torch.Tensor):
    """(output, attention) of one forward of ``model`` on the batch ``x`` (``collect_attention``'s, with
    the output kept by a hook, so the picture costs one forward, not two)."""
    kept = []
    handle = model.register_forward_hook(lambda module, inputs, output: kept.append(output))
    try:
        attention = collect_attention(model, x)
    finally:
        handle.remove()
    return kept[-1].detach().float().cpu(), attention


def gradcam_class(output: torch.Tensor, target: torch.Tensor, choice: str | int) -> tuple[int, str, str]:
    """The class Grad-CAM explains for one sample's ``output`` (no batch axis), and how it was chosen: in a
    word (predicted, true or chosen) and in a clause.

    ``choice`` "predicted": a classifier's predicted class; for segmentation the foreground class with the
    largest mean logit (``viz.gradcam_target``). "true": the label; for segmentation the sample's largest
    foreground class (the predicted one where the mask has no foreground). A class index: that class."""
    segmentation = output.dim() == 3
    if not isinstance(choice, str):
        return int(choice), "chosen", "chosen"
    if choice == "true":
        if not segmentation:
            return int(target), "true", "true class"
        subject = largest_foreground_class(target)
        if subject is not None:
            return subject, "true", "true: the largest foreground class"
        return (int(viz.gradcam_target(output[None])[0]), "predicted",
                "no foreground in the true mask: the largest mean foreground logit")
    if choice != "predicted":
        raise ValueError(f"the Grad-CAM target is 'predicted', 'true' or a class index, not {choice!r}")
    if segmentation:
        return int(viz.gradcam_target(output[None])[0]), "predicted", "predicted: the largest mean foreground logit"
    return int(output.argmax()), "predicted", "predicted class"


def compute_row(model: nn.Module, variant: str, x: torch.Tensor, target: torch.Tensor, layer: str | None,
                kind: str | None, cam_choice: str | int, *, temperature: float | None = None,
                gate_offset: float = 0.0, layer_note: str = "") -> Row:
    """``model`` on the sample ``x`` (C, *S) with the knobs turned as given (and put back afterwards)."""
    modules = dict(model.named_modules())
    with knobs.temperature(model, temperature), knobs.gate_offset(model, gate_offset):
        output, attention = forward_with_attention(model, x[None])
        output = output[0]
        recorded = attention.get(layer, {})
        if kind not in recorded:
            kind = (recorded_kinds(recorded) or [None])[0]
        value = recorded[kind][0] if kind is not None else None
        cam_class, chosen_as, reason = gradcam_class(output, target, cam_choice)
        cam = None
        if layer is not None and kind == "gates" and not value.any():
            # every channel closed: the unit's output is a constant zero, which no gradient reaches
            cam = np.zeros(tuple(x.shape[1:]), dtype=np.float32)
            reason += "; every gate of this unit is closed, so its Grad-CAM is zero"
        elif layer is not None:
            cam = viz.gradcam(model, x[None], modules[layer], cam_class)[0]
        macs = None
        if knobs.has_gates(model):
            cost = flops.cost(model, inputs_for(model, x[None]))
            macs = (cost.macs, cost.macs_executed)
        running_at = knobs.own_temperature(model)
    unit = modules.get(layer)
    return Row(variant, layer, layer_note, kind, value, getattr(unit, "kernel_size", None), x, target, output, cam,
               cam_class, chosen_as, reason, running_at, gate_offset if knobs.has_gates(model) else None, macs)
