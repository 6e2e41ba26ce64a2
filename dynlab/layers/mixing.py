"""Exact ways to convolve each sample with its own kernel, W_b = sum_k a_bk (s_b * W_k).

``a`` is a kernel attention (B, K) and ``s`` an optional spatial attention (B, k^d) over kernel
positions. Every path computes the same function; they differ only in speed and memory:

- ``grouped``: aggregate one kernel per sample and run one convolution with the batch as groups
  (the textbook trick of Chen et al. and the ODConv reference; slow on CPUs for deep layers).
- ``dense``: run the K static kernels as one dense convolution and mix the K outputs with ``a``.
  Costs K convolutions, but plain dense ones; wins when K is small against the spatial size.
- ``unfold``: unfold the input once (im2col), fold the spatial attention into the columns, then
  either multiply by the shared kernel (K = 1) or by per-sample aggregated kernels in a batched
  matrix product.

``auto`` picks by a cost model on the shapes; see ``choose_path``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._unit import ConvUnit, stack_for_dense_conv, unstack_dense_output

PATHS = ("auto", "grouped", "dense", "unfold", "unfold_dense")


def output_shape(unit: ConvUnit, x: torch.Tensor) -> tuple[int, ...]:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(x.shape[2:], unit.kernel_size, unit.stride, unit.padding, unit.dilation)
    )


def choose_path(unit: ConvUnit, x: torch.Tensor, kernels: int, has_spatial: bool) -> str:
    """Cost model: MAC-like work of each exact path, with weights for how well each runs.

    ``dense`` needs K convolutions; ``unfold`` needs one convolution done as a batched product plus
    the per-sample kernel aggregation (B x K x weights). Both ignore the common attention cost.
    """
    positions = 1
    for n in output_shape(unit, x):
        positions *= n
    if kernels == 1:
        return "unfold" if has_spatial else "dense"
    if has_spatial:
        # dense over spatially modulated columns vs per-sample kernels
        return "unfold_dense" if kernels * positions <= 2 * (kernels + positions) else "unfold"
    return "dense" if kernels * positions <= 2 * (kernels + positions) else "unfold"


def mix_kernels_per_sample(
    unit: ConvUnit,
    x: torch.Tensor,
    kernels: torch.Tensor,
    attention: torch.Tensor | None,
    spatial: torch.Tensor | None = None,
    path: str = "auto",
) -> torch.Tensor:
    """y_b = conv(x_b, sum_k attention[b, k] * spatial[b] * kernels[k]) for every sample b.

    kernels: (K, C_out, C_in/g, *k); attention: (B, K) or None (K must then be 1);
    spatial: (B, prod(k)) or None.
    """
    count = kernels.shape[0]
    if attention is None and count != 1:
        raise ValueError("a kernel attention is needed to mix more than one kernel")
    if path == "auto":
        path = choose_path(unit, x, count, spatial is not None)
    if path == "grouped":
        return _grouped(unit, x, kernels, attention, spatial)
    if path == "dense" and spatial is None:
        return _dense(unit, x, kernels, attention)
    if path in ("unfold", "unfold_dense", "dense"):
        return _unfold(unit, x, kernels, attention, spatial, dense=path != "unfold" or count == 1)
    raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def _aggregate(kernels, attention, spatial, dim):
    """Per-sample kernels (B, C_out, C_in/g, *k)."""
    weights = kernels.unsqueeze(0)  # (1, K, C_out, C_in/g, *k)
    if spatial is not None:
        weights = weights * spatial.reshape(spatial.shape[0], 1, 1, 1, *kernels.shape[3:])
    if attention is None:
        return weights[:, 0]
    return torch.einsum("bk,bk...->b...", attention, weights.expand(attention.shape[0], *weights.shape[1:]))


def _grouped(unit, x, kernels, attention, spatial):
    batch = x.shape[0]
    weights = _aggregate(kernels, attention, spatial, unit.dim)
    weights = weights.expand(batch, *weights.shape[1:]) if weights.shape[0] == 1 else weights
    out = unit.conv(
        x.reshape(1, batch * unit.in_channels, *x.shape[2:]),
        weights.reshape(batch * unit.out_channels, *weights.shape[2:]),
        groups=batch * unit.groups,
    )
    return out.reshape(batch, unit.out_channels, *out.shape[2:])


def _dense(unit, x, kernels, attention):
    count = kernels.shape[0]
    if count == 1:
        out = unit.conv(x, kernels[0])
        return out if attention is None else out * attention.reshape(-1, 1, *([1] * unit.dim))
    out = unstack_dense_output(unit.conv(x, stack_for_dense_conv(kernels, unit.groups)), count, unit.groups)
    return torch.einsum("bk,bk...->b...", attention, out)


def unfold(unit: ConvUnit, x: torch.Tensor) -> torch.Tensor:
    """im2col for 1D and 2D: (B, C_in, *S) -> (B, C_in * prod(k), L)."""
    if unit.dim == 2:
        return F.unfold(x, unit.kernel_size, unit.dilation, unit.padding, unit.stride)
    return F.unfold(
        x.unsqueeze(2), (1, *unit.kernel_size), (1, *unit.dilation), (0, *unit.padding), (1, *unit.stride)
    )


def _unfold(unit, x, kernels, attention, spatial, dense: bool):
    batch = x.shape[0]
    count, c_out = kernels.shape[:2]
    groups = unit.groups
    volume = unit.kernel_volume
    cols = unfold(unit, x)  # (B, C_in * k^d, L)
    positions = cols.shape[-1]
    if spatial is not None:
        cols = (cols.reshape(batch, unit.in_channels, volume, positions) * spatial.reshape(batch, 1, volume, 1))
    cols = cols.reshape(batch, groups, -1, positions)  # (B, g, C_in/g * k^d, L)
    if dense:
        # (g, K * C_out/g, C_in/g * k^d) @ (B, g, C_in/g * k^d, L) -> (B, g, K * C_out/g, L)
        w = kernels.reshape(count, groups, c_out // groups, -1).transpose(0, 1).reshape(groups, -1, cols.shape[2])
        out = torch.matmul(w, cols).reshape(batch, groups, count, c_out // groups, positions)
        if attention is None:
            out = out[:, :, 0]
        else:
            out = torch.einsum("bk,bgkol->bgol", attention, out)
    else:
        weights = _aggregate(kernels, attention, None, unit.dim)  # (B, C_out, C_in/g, *k)
        weights = weights.reshape(batch, groups, c_out // groups, -1)
        out = torch.matmul(weights, cols)  # (B, g, C_out/g, L)
    return out.reshape(batch, c_out, *output_shape(unit, x))
