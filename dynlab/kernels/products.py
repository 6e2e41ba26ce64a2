"""K kernels at once: stacked into one dense convolution, or into one matrix product over the whole batch.

``stack_for_dense_conv`` orders K kernels so that one convolution with K x C_out filters computes
all K responses, grouped convolutions included. ``batch_product`` multiplies stacked kernels by the
columns of the whole batch (im2col, batch innermost) in one matrix product per group, so the
weights are read once, not once per sample; ``stacked_conv`` takes that product instead of the
convolution on the tiny maps where it is faster (the CPU, outputs of at most ``TINY_OUTPUT``
positions). The two mixers sum the K responses with a kernel attention in the layout each leaves.
"""
from __future__ import annotations

import torch

from ..layers.unit import ConvUnit
from .im2col import batch_columns
from .recompute import matmul_backward, rebuilt_operands

#: output positions at or below which ``stacked_conv`` multiplies im2col columns instead (CPU only)
TINY_OUTPUT = 4


def stack_for_dense_conv(kernels: torch.Tensor, groups: int) -> torch.Tensor:
    """(K, C_out, C_in/g, *k) -> (K*C_out, C_in/g, *k), ordered so that a grouped conv keeps groups apart.

    A grouped convolution assigns output channels to groups in contiguous blocks, so the K copies of
    each group's filters must sit inside that group's block: order (group, kernel, filter).
    """
    k, c_out = kernels.shape[:2]
    rest = kernels.shape[2:]
    return kernels.reshape(k, groups, c_out // groups, *rest).transpose(0, 1).reshape(k * c_out, *rest)


def unstack_dense_output(y: torch.Tensor, count: int, groups: int) -> torch.Tensor:
    """Inverse ordering of ``stack_for_dense_conv`` on the output: (B, K*C_out, *S) -> (B, K, C_out, *S)."""
    b, channels = y.shape[:2]
    rest = y.shape[2:]
    c_out = channels // count
    return y.reshape(b, groups, count, c_out // groups, *rest).transpose(1, 2).reshape(b, count, c_out, *rest)


def mix_responses(responses: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """sum_k a[b, k] r[b, g, k, ...] for r laid out (B, g, K, ...): one batched (1 x K) x (K x N) product.

    The layout is the one a dense convolution with ``stack_for_dense_conv`` kernels produces, so
    the K responses are mixed without transposing them. Returns (B, g * rest).
    """
    batch, groups, count = responses.shape[:3]
    r = responses.reshape(batch * groups, count, -1)
    a = attention.repeat_interleave(groups, dim=0) if groups > 1 else attention
    return torch.bmm(a.unsqueeze(1).to(r.dtype), r).reshape(batch, -1)


def mix_batch_last(responses: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """sum_k a[b, k] r[g, k, m, b] for responses laid out (g, K, M, B), batch innermost: (g, M, B).

    A broadcast product summed over K, in the layout the batch product leaves. ``mix_responses``
    would need the samples outermost, and a (B, K, M) view of this layout makes the batched product
    copy every sample's K x M block first, in its forward and again in its backward.
    """
    batch = responses.shape[-1]
    return (responses * attention.t().reshape(1, -1, 1, batch).to(responses.dtype)).sum(1)


def batch_product(unit: ConvUnit, x: torch.Tensor, stacked: torch.Tensor, spatial: torch.Tensor | None):
    """Stacked kernels (``stack_for_dense_conv``'s order) times the whole batch's columns, one matrix
    product per group: (g, K C_out/g, L B). Backward rebuilds the columns instead of keeping them."""
    groups = unit.groups

    def operands(x, stacked, spatial):  # the kernels (g, K C_out/g, D), the columns (g, D, L B)
        return stacked.reshape(groups, stacked.shape[0] // groups, -1), batch_columns(unit, x, spatial)

    columns = x.shape[0] * unit.in_channels * unit.kernel_volume * unit.output_positions(x)
    return rebuilt_operands(operands, torch.bmm, matmul_backward, x, stacked, spatial, size=columns)


def stacked_conv(unit: ConvUnit, x: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """``unit.conv(x, stacked)`` for K kernels stacked by ``stack_for_dense_conv``: (B, g * K * C_out/g, *S).

    What ``orient`` and ``local`` compute before pooling or mixing their R (K) responses. On the CPU,
    for an output of at most ``TINY_OUTPUT`` positions (ResNet-18's last stage at 64x64), it is one
    im2col matrix product over the whole batch, which was faster there than the stacked convolution
    (``python -m benchmarks paths``); on larger maps, and on CUDA, the convolution stays.
    """
    positions = unit.output_positions(x)
    if x.device.type != "cpu" or positions > TINY_OUTPUT:
        return unit.conv(x, stacked)
    filters = stacked.shape[0]
    out = batch_product(unit, x, stacked, None).reshape(filters, positions, x.shape[0]).permute(2, 0, 1)
    return out.reshape(x.shape[0], filters, *unit.output_shape(x))
