"""The one list of variants: a name -> its conv unit, its options and what it is (after timm's factories).

Adding a variant: its file in this folder, one ``Variant`` line below, and its test file.
``build`` makes a unit by name (the fast version of ``dynlab.kernels`` when that is on);
``factories`` hands a model the two layer constructors it injects into its blocks.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from .base import StaticConv
from .dyconv import DynamicConv
from .global_attention import SqueezeExcite
from .hard_attention import GatedConv
from .local_attention import PixelMixtureConv
from .odconv import ODConv
from .orient import OrientedConv


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    unit: type
    #: the attention kinds ``collect_attention`` records for it (see ``protocol.ATTENTION_KINDS``)
    attention: tuple[str, ...] = ()
    unit_defaults: dict[str, Any] = field(default_factory=dict)
    post_block: type | None = None
    #: the paper's name for the model this variant stands beside in its tables
    paper_name: str = ""

    def unit_options(self) -> set[str]:
        return _keyword_options(self.unit)

    def post_options(self) -> set[str]:
        return _keyword_options(self.post_block) if self.post_block else set()

    @property
    def uses_temperature(self) -> bool:
        return bool(self.unit.uses_temperature)


def _keyword_options(cls) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("base", "static convolution (vanilla ResNet-18)", StaticConv, paper_name="base"),
        Variant("global", "squeeze-and-excitation after each block (global soft attention)", StaticConv,
                ("se",), post_block=SqueezeExcite, paper_name="global"),
        Variant("local", "pixel-wise mixture of K kernels with a kernel representation (local soft attention)",
                PixelMixtureConv, ("pixel",), paper_name="local"),
        Variant("hard", "input-dependent on/off gates on output channels (hard attention)", GatedConv, ("gates",),
                paper_name="hard"),
        Variant("dyconv", "dynamic convolution, K kernels mixed per image (Chen et al. 2020)", DynamicConv,
                ("kernel",)),
        Variant("odconv", "omni-dimensional dynamic convolution, K = 1 (Li et al. 2022)", ODConv,
                ("channel", "filter", "spatial"), {"kernels": 1}, paper_name="OD-CNN"),
        Variant("odconv4x", "omni-dimensional dynamic convolution, K = 4 (Li et al. 2022)", ODConv,
                ("channel", "filter", "spatial", "kernel"), {"kernels": 4}, paper_name="OD-CNN"),
        Variant("orient", "kernels at 4 rotations with orientation pooling (the paper's text)", OrientedConv,
                ("orientation",), paper_name="OD-CNN"),
    )
}


def names() -> list[str]:
    """The registered variant names, in teaching order."""
    return list(VARIANTS)


def get(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown variant {name!r}; valid variants: {', '.join(VARIANTS)}") from None


def split_options(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a model's ``**unit_options`` into conv-unit and post-block options, refusing unknown ones."""
    variant = get(name)
    unit_names, post_names = variant.unit_options(), variant.post_options()
    unknown = set(options) - unit_names - post_names
    if unknown:
        valid = sorted(unit_names | post_names)
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for variant {name!r}; valid options: {valid or 'none'}"
        )
    unit = {**variant.unit_defaults, **{k: v for k, v in options.items() if k in unit_names}}
    post = {k: v for k, v in options.items() if k in post_names}
    return unit, post


def build(
    name: str,
    in_channels: int,
    out_channels: int,
    kernel_size,
    dim: int = 2,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    bias: bool = False,
    **options,
) -> nn.Module:
    """Build the conv unit of variant ``name`` with ``nn.ConvNd``'s arguments plus its own options."""
    from ..kernels import unit_class

    unit_options, post_options = split_options(name, options)
    if post_options:
        raise ValueError(f"{sorted(post_options)} configure the post-block attention: pass them to build_post_block")
    return unit_class(get(name).unit)(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
        groups=groups, bias=bias, dim=dim, **unit_options,
    )


def build_post_block(name: str, channels: int, **options) -> nn.Module | None:
    """The attention applied after a block's last BN (before the residual add), or None."""
    variant = get(name)
    _, post_options = split_options(name, options)
    return variant.post_block(channels, **post_options) if variant.post_block else None


def factories(name: str, **options) -> tuple[Callable[..., nn.Module], Callable[[int], nn.Module] | None]:
    """``(conv_layer, attn_layer)`` of variant ``name`` with its options bound, for a model to inject.

    ``conv_layer(in_channels, out_channels, kernel_size, stride=..., padding=..., dilation=..., dim=...)``
    builds its conv unit; ``attn_layer(channels)`` its post-block attention (None when it has none).
    The options are checked here, once.
    """
    unit_options, post_options = split_options(name, options)
    conv_layer = functools.partial(build, name, **{k: v for k, v in unit_options.items()})
    attn_layer = functools.partial(build_post_block, name, **post_options) if get(name).post_block else None
    return conv_layer, attn_layer
