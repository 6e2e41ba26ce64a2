"""The speed: exact fast paths for the layers of ``dynlab.layers``, on by default.

``dynlab.layers`` writes each variant's unit as its formula. Here each has a faster exact version,
a subclass with the same parameters, state and outputs (within float tolerance; the tests hold each
to its layer's reference forward): per-sample kernels on the fastest path for each shape
(``per_sample``, with its cost model, im2col and rebuilt-operand backward), the K responses of
``local`` and ``orient`` as one stacked convolution, ``hard`` skipping closed channels at inference,
the ImageNet stem's max pool through channels-last memory, and the process setting that keeps freed
memory for reuse (``allocator``).

One switch decides which a model gets, when it is built: ``dynlab.layers.build`` and the ResNet stem
ask ``unit_class`` and ``stem_pool_class``. It is on unless ``DYNLAB_KERNELS=0``; ``enable(False)``
or ``with kernels.disabled():`` builds the plain layers, e.g. to read or check them.

>>> from dynlab import kernels, layers
>>> type(layers.build("dyconv", 8, 8, 3, padding=1)).__name__
'FastDynamicConv'
>>> with kernels.disabled():
...     type(layers.build("dyconv", 8, 8, 3, padding=1)).__name__
'DynamicConv'
"""
from __future__ import annotations

import contextlib
import functools
import os

from torch import nn

_enabled = os.environ.get("DYNLAB_KERNELS", "1").strip() != "0"


def enabled() -> bool:
    """Whether models built now get the fast units."""
    return _enabled


def enable(flag: bool = True) -> None:
    global _enabled
    _enabled = bool(flag)


@contextlib.contextmanager
def disabled():
    """Build the plain layers of ``dynlab.layers`` inside this block."""
    previous = enabled()
    enable(False)
    try:
        yield
    finally:
        enable(previous)


@functools.cache
def fast_units() -> dict[type, type]:
    """Each layer class that has a fast version -> that version."""
    from ..layers.dyconv import DynamicConv
    from ..layers.hard_attention import GatedConv
    from ..layers.local_attention import PixelMixtureConv
    from ..layers.odconv import ODConv
    from ..layers.orient import OrientedConv
    from .dyconv import FastDynamicConv
    from .hard_attention import FastGatedConv
    from .local_attention import FastPixelMixtureConv
    from .odconv import FastODConv
    from .orient import FastOrientedConv

    return {DynamicConv: FastDynamicConv, ODConv: FastODConv, OrientedConv: FastOrientedConv,
            PixelMixtureConv: FastPixelMixtureConv, GatedConv: FastGatedConv}


def unit_class(cls: type) -> type:
    """The class to build for layer class ``cls``: its fast version when the switch is on and it has one."""
    return fast_units().get(cls, cls) if enabled() else cls


def stem_pool_class() -> type:
    """The ImageNet stem's 2D max pool: ``StemMaxPool2d`` when the switch is on, else ``nn.MaxPool2d``."""
    from .stem_pool import StemMaxPool2d

    return StemMaxPool2d if enabled() else nn.MaxPool2d


def prepare_process() -> bool:
    """Process-wide settings for training speed (freed memory kept for reuse); True where applied."""
    from .allocator import keep_freed_memory

    return enabled() and keep_freed_memory()
