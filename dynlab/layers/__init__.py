"""The ideas: conv units for dynamic convolution, one file per variant, and the registry that names them.

Each variant's file holds its unit as the formula reads: the math in the docstring and a plain
forward. ``registry.py`` is the one list of variants; ``protocol.py`` what a model built from these
units offers (temperature, auxiliary loss, attention record); ``unit.py`` what every unit shares.
The faster exact versions of the same units live in ``dynlab.kernels``; ``build`` gives them.

>>> from dynlab import layers
>>> layers.names()
['base', 'global', 'local', 'hard', 'dyconv', 'odconv', 'odconv4x', 'orient']
>>> unit = layers.build("odconv4x", 64, 64, 3, padding=1)
"""
from .base import StaticConv
from .dyconv import DynamicConv
from .global_attention import SqueezeExcite
from .hard_attention import GatedConv
from .local_attention import KernelRepresentation, PixelMixtureConv
from .odconv import ODConv
from .orient import OrientedConv
from .protocol import (
    ATTENTION_KINDS,
    TemperatureSchedule,
    auxiliary_loss,
    bind,
    collect_attention,
    needs_precise_batchnorm,
    reset_kernel_representation,
    set_temperature,
    uses_temperature,
)
from .registry import VARIANTS, Variant, build, build_post_block, factories, get, names, split_options
from .unit import AttentionRecorder, ConvUnit, norm_after

__all__ = [
    "ATTENTION_KINDS", "AttentionRecorder", "ConvUnit", "DynamicConv", "GatedConv", "KernelRepresentation",
    "ODConv", "OrientedConv", "PixelMixtureConv", "SqueezeExcite", "StaticConv", "TemperatureSchedule",
    "VARIANTS", "Variant", "auxiliary_loss", "bind", "build", "build_post_block", "collect_attention",
    "factories", "get", "names", "needs_precise_batchnorm", "norm_after", "reset_kernel_representation", "set_temperature",
    "split_options", "uses_temperature",
]
