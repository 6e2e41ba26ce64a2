"""Conv units for dynamic convolution, one file per variant, and the registry that names them.

>>> from dynlab import layers
>>> layers.names()
['base', 'global', 'local', 'hard', 'dyconv', 'odconv', 'odconv4x', 'orient']
>>> unit = layers.build("odconv4x", 64, 64, 3, padding=1)
"""
from ._unit import AttentionRecorder, ConvUnit
from .base import StaticConv
from .dyconv import DynamicConv
from .global_attention import SqueezeExcite
from .hard_attention import GatedConv
from .local_attention import KernelRepresentation, PixelMixtureConv
from .model_hooks import (
    TemperatureSchedule,
    auxiliary_loss,
    bind,
    collect_attention,
    needs_precise_batchnorm,
    set_temperature,
    uses_temperature,
)
from .odconv import ODConv
from .orient import OrientedConv
from .registry import VARIANTS, Variant, build, build_post_block, get, names, split_options

__all__ = [
    "AttentionRecorder", "ConvUnit", "DynamicConv", "GatedConv", "KernelRepresentation", "ODConv",
    "OrientedConv", "PixelMixtureConv", "SqueezeExcite", "StaticConv", "TemperatureSchedule", "VARIANTS",
    "Variant", "auxiliary_loss", "bind", "build", "build_post_block", "collect_attention", "get", "names",
    "needs_precise_batchnorm", "set_temperature", "split_options", "uses_temperature",
]
