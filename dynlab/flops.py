"""Parameters and multiply-accumulates (MACs) that see inside dynamic layers.

Convention (after the ODConv authors): a layer costs its convolution with the per-sample kernel,
plus its attention branches (their FC/1x1 layers), plus one MAC per kernel weight and per kernel for
each attention that modulates the weights (kernel aggregation, spatial attention), plus one MAC per
element for each attention applied to a feature map. Normalisation, activations and pooling are not
counted. FLOPs = 2 x MACs; the two are different numbers, and dynlab always names which it prints.

Plain hook counters only know ``nn.Conv*``/``nn.Linear``: older thop counts the functional convolution
inside a dynamic unit as zero, and thop 2.2 counts whatever algorithm happened to run (4 convolutions
for a dense K = 4 path), not the layer's cost. ``cost`` asks each dynlab unit for its own MACs
(``unit.macs(x, y)``) and counts functional products elsewhere at the dispatcher; ``thop_custom_ops()``
teaches thop the same convention.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .layers import AttentionRecorder, GatedConv


@dataclass(frozen=True)
class Cost:
    """A model's parameters and MACs for one input (``macs_executed``, ``macs_union``: see ``cost``)."""

    params: int
    macs: int
    macs_executed: int | None = None  # models with ``hard`` units: each sample's own open channels
    macs_union: int | None = None  # models with ``hard`` units: the channels open for some sample, for all

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _conv_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return y.numel() * (module.in_channels // module.groups) * int(torch.tensor(module.kernel_size).prod())


def _linear_macs(module: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> int:
    return y.numel() * module.in_features


def module_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int, int]:
    """(MACs, executed MACs, union MACs) a module does itself, its children excluded."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        macs = _conv_macs(module, x, y)
    elif isinstance(module, nn.Linear):
        macs = _linear_macs(module, x, y)
    elif isinstance(module, AttentionRecorder) and hasattr(module, "macs"):
        macs = module.macs(x, y)
        if isinstance(module, GatedConv):
            return macs, module.executed_macs(x, y), module.union_macs(x, y)
    else:
        macs = 0
    return macs, macs, macs


def _example_input(model: nn.Module, input_shape) -> torch.Tensor:
    if isinstance(input_shape, torch.Tensor):
        return input_shape
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 3:
        raise ValueError(f"input_shape includes the batch: (batch, channels, length) or (batch, channels, H, W), "
                         f"got {shape}")
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


class _FunctionalCounter(TorchDispatchMode):
    """Counts matrix products and convolutions that run outside any module with a counting rule.

    This is how a functional ``F.conv2d`` inside a user's own module is seen: modules with a rule
    (convolutions, linear layers, dynlab units) count themselves, and everything they run is skipped
    here while ``depth`` > 0. Formulas come from ``torch.utils.flop_counter`` (FLOPs; halved to MACs).
    """

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if self.depth == 0 and packet in flop_registry:
            self.macs += int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
        return out


def _has_rule(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) or (
        isinstance(module, AttentionRecorder) and hasattr(module, "macs"))


@torch.no_grad()
def count(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    """(MACs, executed MACs, union MACs) of one forward of ``model`` on ``x`` (eval mode, no gradients)."""
    totals = [0, 0, 0]
    functional = _FunctionalCounter()

    def enter(module, inputs):
        functional.depth += 1

    def leave(module, inputs, output):
        functional.depth -= 1
        for i, value in enumerate(module_macs(module, inputs[0], output)):
            totals[i] += value

    ruled = [m for m in model.modules() if _has_rule(m)]
    handles = [m.register_forward_pre_hook(enter) for m in ruled] + [m.register_forward_hook(leave) for m in ruled]
    was_training = model.training
    model.eval()
    try:
        with functional:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return tuple(total + functional.macs for total in totals)


def cost(model: nn.Module, input_shape) -> Cost:
    """Parameters and MACs of ``model`` for an input of ``input_shape`` (batch included) or a given tensor.

    For models with ``hard`` units, two figures of what closed channels save, on this input:
    ``macs_executed`` counts each sample's own open channels (the mean open rate; what a per-sample
    execution would cost), ``macs_union`` the channels open for at least one sample of the batch,
    computed for every sample (what the skip path of ``dynlab.kernels`` computes in one convolution).
    At batch 1 the two are equal.
    """
    x = _example_input(model, input_shape)
    macs, executed, union = count(model, x)
    has_gates = any(isinstance(m, GatedConv) for m in model.modules())
    params = sum(p.numel() for p in model.parameters())
    return Cost(params=params, macs=int(macs), macs_executed=int(executed) if has_gates else None,
                macs_union=int(union) if has_gates else None)


def profile(model: nn.Module, input_shape) -> Cost:
    """Deprecated name of ``cost``."""
    warnings.warn("dynlab.flops.profile is now dynlab.flops.cost", FutureWarning, stacklevel=2)
    return cost(model, input_shape)


def _zero(module, inputs, output):
    module.total_ops += 0


def thop_custom_ops() -> dict[type, object]:
    """``custom_ops`` for ``thop.profile`` that count dynlab units (and nothing for norms and pools).

    ``thop.profile(model, inputs=(x,), custom_ops=thop_custom_ops())`` then agrees with ``cost``.
    """
    from . import layers

    def unit_op(module, inputs, output):
        # thop adds every module's own count; a unit's children (FC layers) have rules of their own
        module.total_ops += module.macs(inputs[0], output)

    def conv_op(module, inputs, output):
        module.total_ops += _conv_macs(module, inputs[0], output)  # thop would add one MAC per bias

    from . import kernels

    units = {cls for v in layers.VARIANTS.values() for cls in (v.unit, v.post_block) if cls is not None}
    units |= set(kernels.fast_units().values())  # thop matches a module's exact class
    ops = {cls: unit_op for cls in units}
    ops.update({nn.Conv1d: conv_op, nn.Conv2d: conv_op})
    for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool2d):
        ops[cls] = _zero
    return ops


#: the settings ``dynlab flops`` reports: (label, model factory, input shape with batch 1)
def table_settings(num_classes_tiny: int = 200):
    from .models import resnet18, segmentation_model, tsresnet

    return [
        ("classification 64x64, small stem (Tiny ImageNet)", lambda v: resnet18(v, num_classes_tiny, stem="small"),
         (1, 3, 64, 64)),
        ("classification 224x224, ImageNet stem (the seed's setting)", lambda v: resnet18(v, num_classes_tiny),
         (1, 3, 224, 224)),
        ("segmentation 256x256, DeepLabV3 head (VOC, 21 classes)", lambda v: segmentation_model(v, 21),
         (1, 3, 256, 256)),
        ("time series, TS-ResNet, length 176 (Adiac, 37 classes)", lambda v: tsresnet(v, 37), (1, 1, 176)),
    ]


def table(variants=None, settings=None) -> list[dict]:
    """One row per setting and variant: params, MACs, FLOPs and the MAC ratio to ``base``."""
    from . import layers

    variants = list(variants or layers.names())
    rows = []
    for label, factory, shape in settings or table_settings():
        base_macs = None
        for variant in ["base"] + [v for v in variants if v != "base"]:
            torch.manual_seed(0)
            result = cost(factory(variant), shape)
            base_macs = base_macs or result.macs
            if variant in variants:
                rows.append({"setting": label, "variant": variant, "params": result.params, "macs": result.macs,
                             "flops": result.flops, "macs_executed": result.macs_executed,
                             "macs_union": result.macs_union,
                             "mac_ratio": result.macs / base_macs})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table; M = 10^6, G = 10^9; MACs are multiply-accumulates and FLOPs = 2 x MACs."""
    lines = []
    setting = None
    for row in rows:
        if row["setting"] != setting:
            setting = row["setting"]
            lines += ["", f"### {setting} (per image/series, batch 1)", "",
                      "| variant | params (M) | MACs (G) | FLOPs (G) = 2 x MACs | MACs / base |",
                      "| --- | ---: | ---: | ---: | ---: |"]
        lines.append(f"| {row['variant']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.3f} | "
                     f"{row['flops'] / 1e9:.3f} | {row['mac_ratio']:.2f} |")
    return "\n".join(lines).lstrip("\n")
