"""``local``: pixel-wise soft attention over K kernels (seed 2.1.2).

    y(p) = sum_k A_k(p) (W_k * x)(p),   A = softmax((conv1x1(x) + U r) / T) over k.

r is the *kernel representation* the seed describes: a vector carried from layer to layer, zero at
the start of every forward, and updated by each ``local`` unit as r <- tanh(V [GAP(x); r]) before use.
The model owns it (see ``dynlab.layers.bind``). The seed's eq. 1, W = sum_k A_k W_k, mixes kernels
once per image: that is the special case where A does not depend on p, i.e. ``dyconv``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._unit import ConvUnit, global_average, stack_for_dense_conv, stacked_kernels
from .mixing import stacked_conv

_CONV_MODULE = {1: nn.Conv1d, 2: nn.Conv2d}
#: softmax weights below this (2^-64, about 5e-20) are set to 0; see ``PixelMixtureConv.pixel_attention``
NEGLIGIBLE_WEIGHT = 2.0 ** -64


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
        """A: (B, K, *S_out), a softmax over the K kernels at every output pixel.

        Weights below ``NEGLIGIBLE_WEIGHT`` (2^-64) are set to 0. The logits are not normalised and
        the softmax puts almost all weight on one kernel: in ResNet-18 at 64x64 the smallest weights
        were 1e-21 to 1e-33 at the first step and subnormal or 0 within four Adam steps. Their
        products with the output's gradient were subnormal numbers (under 1.2e-38), which x86 CPUs
        multiply through a slow microcode path: the last stages' backward products slowed down up to
        25 times and the training step grew from 1.1 s to 2.1 s within six steps. A weight of 2^-64
        beside one of at least 1/K changes the output far below float32's rounding (2^-24), and its
        kernel's gradient by less than any optimiser step can show. ``torch.set_flush_denormal`` is
        no remedy here: it reaches the calling thread only, not the worker threads.
        """
        previous = self.shared.value if self.shared is not None else None
        if previous is None or previous.shape[0] != x.shape[0]:
            previous = x.new_zeros(x.shape[0], self.representation_size)
        r = torch.tanh(self.update_representation(torch.cat([global_average(x), previous], dim=1)))
        if self.shared is not None:
            self.shared.value = r
        logits = self.pixel_logits(x) + self.representation_logits(r).reshape(*r.shape[:1], -1, *([1] * self.dim))
        attention = torch.softmax(logits / self.temperature, dim=1)  # (B, K, *S_out)
        return attention.masked_fill(attention < NEGLIGIBLE_WEIGHT, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        attention = self.pixel_attention(x)
        self._record(pixel=attention)
        responses = stacked_conv(self, x, stack_for_dense_conv(self.weight, self.groups))
        return self.mix(responses, attention)

    def mix(self, responses: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """y = sum_k A_k * (R_k + b_k) for the dense output R of the K stacked kernels.

        R is viewed as (B, g, K, C_out/g, *S), its natural layout (see ``stack_for_dense_conv``), and
        mixed by ``_PixelMix`` without transposing it. The bias adds sum_k A_k b_k.
        """
        batch, spatial = responses.shape[0], responses.shape[2:]
        responses = responses.reshape(batch, self.groups, self.kernels, -1, *spatial)
        out = _PixelMix.apply(responses, attention).reshape(batch, self.out_channels, *spatial)
        if self.bias is not None:
            out = out + torch.einsum("bk...,ko->bo...", attention, self.bias)
        return out

    def macs(self, x: torch.Tensor, y: torch.Tensor) -> int:
        # K convolutions evaluated at every position, then one multiply-add per kernel and output element
        return self.kernels * self.conv_macs(x.shape[0], y[0, 0].numel()) + self.kernels * y.numel()


class _PixelMix(torch.autograd.Function):
    """sum_k A[b, k, p] R[b, g, k, c, p] for R (B, g, K, C/g, *S) and A (B, K, *S): (B, g, C/g, *S).

    The forward accumulates over the K kernels in place (K is a small constant, not the batch), so no
    K-times larger product is materialised. The backward writes R's gradient, A times the output's
    gradient, in one broadcast product, and A's gradient one kernel at a time. Written with indexing
    in autograd's terms, each R[:, :, k] would send back a zero-filled tensor of R's whole size with
    one slice set, and the K of them summed: on the small stem's 32x32 maps that filling took 0.3 s of
    a 2.9 s training step.
    """

    @staticmethod
    def forward(ctx, responses, attention):
        ctx.save_for_backward(responses, attention)
        weights = attention.unsqueeze(1).unsqueeze(3)  # (B, 1, K, 1, *S)
        out = responses[:, :, 0] * weights[:, :, 0]
        for k in range(1, responses.shape[2]):
            out.addcmul_(responses[:, :, k], weights[:, :, k])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        responses, attention = ctx.saved_tensors
        grad_responses = grad_attention = None
        if ctx.needs_input_grad[0]:
            grad_responses = grad.unsqueeze(2) * attention.unsqueeze(1).unsqueeze(3)
        if ctx.needs_input_grad[1]:
            grad_attention = torch.stack(
                [(grad * responses[:, :, k]).sum(dim=(1, 2)) for k in range(responses.shape[2])], dim=1)
        return grad_responses, grad_attention
