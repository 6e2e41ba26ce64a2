"""Names -> conv units (and optional post-block attention), after timm's layer factories."""
from __future__ import annotations

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
    unit_defaults: dict[str, Any] = field(default_factory=dict)
    post_block: Callable[..., nn.Module] | None = None

    def unit_options(self) -> set[str]:
        return _keyword_options(self.unit)

    def post_options(self) -> set[str]:
        return _keyword_options(self.post_block) - {"channels"} if self.post_block else set()


def _keyword_options(cls) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("base", "static convolution (vanilla ResNet-18)", StaticConv),
        Variant("global", "squeeze-and-excitation after each block (global soft attention)", StaticConv,
                post_block=SqueezeExcite),
        Variant("local", "pixel-wise mixture of K kernels with a kernel representation (local soft attention)",
                PixelMixtureConv),
        Variant("hard", "input-dependent on/off gates on output channels (hard attention)", GatedConv),
        Variant("dyconv", "dynamic convolution, K kernels mixed per image (Chen et al. 2020)", DynamicConv),
        Variant("odconv", "omni-dimensional dynamic convolution, K = 1 (Li et al. 2022)", ODConv, {"kernels": 1}),
        Variant("odconv4x", "omni-dimensional dynamic convolution, K = 4 (Li et al. 2022)", ODConv, {"kernels": 4}),
        Variant("orient", "kernels at 4 rotations with orientation pooling (the seed's text)", OrientedConv),
    )
}

# SqueezeExcite's reduction/min_hidden are plain parameters, not keyword-only: name them here.
_POST_OPTIONS = {"global": {"reduction", "min_hidden"}}


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
    unit_names = variant.unit_options()
    post_names = _POST_OPTIONS.get(name, set())
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
    unit_options, post_options = split_options(name, options)
    if post_options:
        raise ValueError(f"{sorted(post_options)} configure the post-block attention: pass them to build_post_block")
    return get(name).unit(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
        groups=groups, bias=bias, dim=dim, **unit_options,
    )


def build_post_block(name: str, channels: int, **options) -> nn.Module | None:
    """The attention applied after a block's last BN (before the residual add), or None."""
    variant = get(name)
    _, post_options = split_options(name, options)
    return variant.post_block(channels, **post_options) if variant.post_block else None
