"""``odconv`` / ``odconv4x`` on the fastest exact per-sample-kernel path for each unit's shape."""
from __future__ import annotations

import torch

from ..layers.odconv import ODConv
from ..layers.unit import spread
from .per_sample import mix_kernels_per_sample


class FastODConv(ODConv):
    """``ODConv`` whose per-sample kernels (and spatial attention) are applied by ``mix_kernels_per_sample``."""

    path = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        channel, filt, spatial, kernel = self.attention(x, self.temperature)
        self._record(
            **{k: v for k, v in (("channel", channel), ("filter", filt), ("spatial", spatial), ("kernel", kernel))
               if v is not None}
        )
        out = mix_kernels_per_sample(self, x * spread(channel, self.dim), self.weight, kernel, spatial, self.path)
        return out if filt is None else out * spread(filt, self.dim)
