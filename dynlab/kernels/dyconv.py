"""``dyconv`` on the fastest exact per-sample-kernel path for each unit's shape (``per_sample``)."""
from __future__ import annotations

import torch

from ..layers.dyconv import DynamicConv
from .per_sample import mix_kernels_per_sample


class FastDynamicConv(DynamicConv):
    """``DynamicConv`` whose per-image kernels are applied by ``mix_kernels_per_sample``.

    ``path``: ``"auto"`` (the cost model's choice per shape) or one path of ``per_sample.PATHS``.
    """

    path = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        attention = self.kernel_attention(x)
        self._record(kernel=attention)
        out = mix_kernels_per_sample(self, x, self.weight, attention, path=self.path)
        if self.bias is not None:
            out = out + (attention @ self.bias).reshape(*attention.shape[:1], -1, *([1] * self.dim))
        return out
