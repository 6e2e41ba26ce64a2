"""``local`` with its K kernels as one stacked convolution, mixed in place, and no subnormal weights."""
from __future__ import annotations

import torch

from ..layers.local_attention import PixelMixtureConv
from .products import stack_for_dense_conv, stacked_conv

#: softmax weights below this (2^-64, about 5e-20) are set to 0; see ``FastPixelMixtureConv.pixel_attention``
NEGLIGIBLE_WEIGHT = 2.0 ** -64


class FastPixelMixtureConv(PixelMixtureConv):
    def pixel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's attention, with weights below ``NEGLIGIBLE_WEIGHT`` (2^-64) set to 0.

        The logits are not normalised and the softmax puts almost all weight on one kernel: in
        ResNet-18 the smallest weights fall to subnormal numbers (under 1.2e-38) within a few Adam
        steps, and so do their products with the output's gradient, which x86 CPUs multiply through
        a slow microcode path (``python -m benchmarks subnormal`` shows the steps slowing down). A
        weight of 2^-64 beside one of at least 1/K changes the output far below float32's rounding
        (2^-24), and its kernel's gradient by less than any optimiser step can show.
        ``torch.set_flush_denormal`` is no remedy: it reaches the calling thread only, not the
        worker threads.
        """
        attention = super().pixel_attention(x)
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


class _PixelMix(torch.autograd.Function):
    """sum_k A[b, k, p] R[b, g, k, c, p] for R (B, g, K, C/g, *S) and A (B, K, *S): (B, g, C/g, *S).

    The forward accumulates over the K kernels in place (K is a small constant, not the batch), so no
    K-times larger product is materialised. The backward writes R's gradient, A times the output's
    gradient, in one broadcast product, and A's gradient one kernel at a time. Written with indexing
    in autograd's terms, each R[:, :, k] would send back a zero-filled tensor of R's whole size with
    one slice set, and the K of them summed.
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
