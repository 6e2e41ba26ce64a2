"""``local``: pixel-wise soft attention over K kernels (the paper's 2.1.2).

    y(p) = sum_k A_k(p) (W_k * x)(p),   A = softmax((conv1x1(x) + U r) / T) over k.

r is the *kernel representation* the paper describes: a vector carried from layer to layer, zero at
the start of every forward, and updated by each ``local`` unit as r <- tanh(V [GAP(x); r]) before use.
The model owns it (see ``dynlab.layers.bind``). The paper's eq. 1, W = sum_k A_k W_k, mixes kernels
once per image: that is the special case where A does not depend on p, i.e. ``dyconv``.
"""
from __future__ import annotations

import torch
from torch import nn

from .unit import ConvUnit, global_average, stacked_kernels

_CONV_MODULE = {1: nn.Conv1d, 2: nn.Conv2d}


class KernelRepresentation:
    """The model-level state that ``local`` units share within one forward (not a parameter)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def reset(self) -> None:
        self.value = None

    def __getstate__(self) -> dict:
        # the value is transient (and a non-leaf tensor after a forward, which deepcopy refuses)
        return {"value": None}


class PixelMixtureConv(ConvUnit):
    uses_temperature = True

    def __init__(self, *args, kernels: int = 4, representation: int = 32, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if kernels < 1 or representation < 1:
            raise ValueError(f"kernels and representation must be >= 1, got {kernels} and {representation}")
        for k, p, d in zip(self.kernel_size, self.padding, self.dilation):
            if 2 * p != d * (k - 1):
                raise ValueError(
                    "local needs 'same' padding (padding = dilation * (kernel_size - 1) / 2) so that its "
                    f"pixel attention lines up with the output; got kernel_size={self.kernel_size}, padding={self.padding}"
                )
        self.kernels = kernels
        self.representation_size = representation
        self.weight = stacked_kernels(kernels, self.weight_shape)
        self.bias = nn.Parameter(torch.zeros(kernels, self.out_channels)) if self.has_bias else None
        self.pixel_logits = _CONV_MODULE[self.dim](self.in_channels, kernels, 1, stride=self.stride)
        self.update_representation = nn.Linear(self.in_channels + representation, representation)  # V
        self.representation_logits = nn.Linear(representation, kernels, bias=False)  # U
        self.shared: KernelRepresentation | None = None  # set by dynlab.layers.bind

    def pixel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """A: (B, K, *S_out), a softmax over the K kernels at every output pixel."""
        previous = self.shared.value if self.shared is not None else None
        if previous is None or previous.shape[0] != x.shape[0]:
            previous = x.new_zeros(x.shape[0], self.representation_size)
        r = torch.tanh(self.update_representation(torch.cat([global_average(x), previous], dim=1)))
        if self.shared is not None:
            self.shared.value = r
        logits = self.pixel_logits(x) + self.representation_logits(r).reshape(*r.shape[:1], -1, *([1] * self.dim))
        return torch.softmax(logits / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        attention = self.pixel_attention(x)
        self._record(pixel=attention)
        out = 0
        for k in range(self.kernels):  # y(p) = sum_k A_k(p) (W_k * x)(p)
            bias = self.bias[k] if self.bias is not None else None
            out = out + attention[:, k:k + 1] * self.conv(x, self.weight[k], bias)
        return out

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # K convolutions evaluated at every position, then one multiply-add per kernel and output element
        return self.kernels * self.conv_macs(x.shape[0], y[0, 0].numel()) + self.kernels * y.numel()
