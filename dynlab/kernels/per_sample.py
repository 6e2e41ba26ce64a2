"""Fast exact ways to convolve each sample with its own kernel, W_b = sum_k a_bk (s_b * W_k).

``dyconv``'s and ``odconv``'s units in ``dynlab.layers`` write this as the batch-as-groups
convolution (``conv_per_sample``); the fast units of ``dynlab.kernels`` call ``mix_kernels_per_sample``.

``a`` is a kernel attention (B, K) and ``s`` an optional spatial attention (B, k^d) over kernel
positions. Every path computes the same function; they differ only in speed and memory:

- ``grouped``: aggregate one kernel per sample and run one convolution with the batch as groups
  (the textbook trick of Chen et al. and the ODConv reference; slow on CPUs for deep layers).
- ``dense``: run the K static kernels as one dense convolution (K x C_out output channels) and mix
  the K outputs with ``a``. Costs K convolutions, but plain dense ones that run at full speed; wins
  when K is small against the number of output positions. Without spatial attention only.
- ``unfold``: unfold the input once (im2col), fold the spatial attention into the columns (or into
  the kernels, whichever is smaller), and multiply every sample's columns by its own aggregated
  kernel in one batched matrix product. One convolution's MACs plus the B x K x weights aggregation.
- ``unfold_dense``: unfold the input, fold the spatial attention into the columns, and multiply the
  columns of the whole batch by the K shared kernels as *one* large matrix product (the weights are
  read once, not once per sample), then mix. For tiny maps (deep layers) this is the fast path.

``unfold`` needs K > 1 (with one kernel there is nothing to aggregate: that is ``unfold_dense``) and
``dense`` no spatial attention; a path that does not apply is refused, never swapped for another.
``auto`` picks by a cost model on the shapes; see ``choose_path``. The kernel aggregation is one
matrix product (B, K) x (K, weights), and the spatial attention is applied once to the aggregated
kernel, so no B x K x weights tensor is ever materialised. For backward, the ``grouped``,
``unfold`` and ``unfold_dense`` paths keep their small inputs and rebuild the unfolded input and the
per-sample kernels there (``recompute``), not the large operands themselves.
"""
from __future__ import annotations

import torch

from ..layers.unit import ConvUnit
from . import recompute
from .im2col import columns
from .products import batch_product, mix_batch_last, mix_responses, stack_for_dense_conv
from .recompute import compute_dtype, matmul_backward, rebuilt_operands

PATHS = ("auto", "grouped", "dense", "unfold", "unfold_dense")

#: Cost-model weights, in static-convolution MACs, calibrated by ``python -m benchmarks paths`` (forward
#: and backward of ResNet-18's unit shapes at batch 32) on a 2-core x86 CPU; they only rank the paths.
GROUPED_CONV = 1.2  # batch-as-groups convolution: per MAC, a little slower than a dense one ...
GROUPED_WEIGHT = 40.0  # ... plus, per sample, writing and reading its own kernel, built again for backward
GROUPED_WEIGHT_KEPT = 20.0  # the same where backward keeps the kernels instead (``recompute.KEEP_UP_TO``)
BATCHED_CONV = 1.5  # per-sample matrix products over the unfolded input
AGGREGATION = 16.0  # per aggregated weight, kept in memory and read back by the batched products
BATCH_GEMM = 0.9  # one matrix product over the whole batch, per MAC
IM2COL = 100.0  # per unfolded element: the strided copy, the spatial product and their backward
TINY_MAPS = 4.0  # a dense convolution with K x C_out filters slows down on maps of few positions


def applicable_paths(kernels: int, has_spatial: bool) -> tuple[str, ...]:
    """The exact paths that can mix ``kernels`` kernels, with or without a spatial attention."""
    return tuple(p for p in PATHS[1:] if not (p == "unfold" and kernels == 1) and not (p == "dense" and has_spatial))


def path_costs(unit: ConvUnit, x: torch.Tensor, kernels: int, has_spatial: bool) -> dict[str, float]:
    """Estimated cost of each applicable exact path, in static-convolution MACs per sample.

    With P output positions and w weights per kernel one convolution is P w MACs and its unfolded
    input has C_in k^d P elements. ``dense`` and ``unfold_dense`` run K convolutions at full speed;
    ``grouped`` and ``unfold`` run one, but build and stream a kernel per sample (K w each), which is
    memory-bound: they win on large maps, where that is small against P w. ``grouped`` costs half as much
    per weight where its B per-sample kernels are few enough to be kept for backward, not rebuilt
    (calibrated on the course's models by ``python -m benchmarks course --units``).
    """
    positions = unit.output_positions(x)
    weights = unit.out_channels * (unit.in_channels // unit.groups) * unit.kernel_volume
    conv = positions * weights
    columns = unit.in_channels * unit.kernel_volume * positions
    grouped_weight = GROUPED_WEIGHT_KEPT if recompute.kept(x.shape[0] * weights) else GROUPED_WEIGHT
    costs = {
        "grouped": GROUPED_CONV * conv + grouped_weight * (kernels + 1) * weights,
        "dense": kernels * conv * (1 + TINY_MAPS / positions),
        "unfold": BATCHED_CONV * conv + IM2COL * columns + AGGREGATION * kernels * weights,
        "unfold_dense": BATCH_GEMM * kernels * conv + IM2COL * columns,
    }
    return {p: costs[p] for p in applicable_paths(kernels, has_spatial)}


def choose_path(unit: ConvUnit, x: torch.Tensor, kernels: int, has_spatial: bool) -> str:
    """The cheapest path by ``path_costs`` (a plain convolution when there is nothing to aggregate).

    On ResNet-18 at batch 32 this picks ``grouped`` on the first stage's large maps, ``unfold``
    (dyconv, odconv4x) or ``unfold_dense`` (odconv) on mid-sized ones and ``unfold_dense`` on the
    tiny maps of the last stages. The weights were calibrated on a CPU. On CUDA, where these layers
    are bound by kernel launches rather than MACs, ``dense`` (one cuDNN convolution with K x C_out
    filters, one batched mix) was the fastest path at every ResNet-18 shape and is taken wherever it
    applies (``benchmarks/results/README.md``).
    """
    if not has_spatial and (kernels == 1 or x.device.type == "cuda"):
        return "dense"
    costs = path_costs(unit, x, kernels, has_spatial)
    return min(costs, key=lambda name: costs[name])  # not key=costs.get, which torch.compile cannot trace


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
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    if path == "auto":
        path = choose_path(unit, x, count, spatial is not None)
    applicable = applicable_paths(count, spatial is not None)
    if path not in applicable:
        why = "one kernel leaves nothing to aggregate" if path == "unfold" else "it cannot apply a spatial attention"
        raise ValueError(f"path {path!r} cannot run this unit ({why}); paths that can: {', '.join(applicable)}")
    return _PATHS[path](unit, x, kernels, attention, spatial)


def _aggregate(kernels, attention, spatial):
    """Per-sample kernels (B, C_out, C_in/g, *k), or (1, ...) when nothing depends on the sample.

    sum_k a_bk (s_b * W_k) = s_b * sum_k a_bk W_k: one (B, K) x (K, weights) product, then s_b.
    """
    count = kernels.shape[0]
    if attention is None:
        weights = kernels[:1]
    else:
        weights = (attention @ kernels.reshape(count, -1)).reshape(attention.shape[0], *kernels.shape[1:])
    if spatial is not None:
        weights = weights * spatial.reshape(spatial.shape[0], 1, 1, *kernels.shape[3:])
    return weights


def _grouped(unit, x, kernels, attention, spatial):
    batch = x.shape[0]

    def operands(x, kernels, attention, spatial):  # the batch as one sample, the per-sample kernels as groups
        weights = _aggregate(kernels, attention, spatial)
        weights = weights.expand(batch, *weights.shape[1:]) if weights.shape[0] == 1 else weights
        return (x.reshape(1, batch * unit.in_channels, *x.shape[2:]),
                weights.reshape(batch * unit.out_channels, *weights.shape[2:]))

    def conv(x, weights):
        return unit.conv(x, weights, groups=batch * unit.groups)

    def conv_backward(grad, x, weights):
        dtype = compute_dtype(x, weights)
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad.to(dtype), x.to(dtype), weights.to(dtype), None, list(unit.stride), list(unit.padding),
            list(unit.dilation), False, [0] * unit.dim, batch * unit.groups,
            [x.requires_grad, weights.requires_grad, False])
        return grad_x, grad_w

    per_sample_kernels = batch * kernels[0].numel()
    out = rebuilt_operands(operands, conv, conv_backward, x, kernels, attention, spatial, size=per_sample_kernels)
    return out.reshape(batch, unit.out_channels, *out.shape[2:])


def _dense(unit, x, kernels, attention, spatial):  # spatial is None: see applicable_paths
    count = kernels.shape[0]
    if count == 1:
        out = unit.conv(x, kernels[0])
        return out if attention is None else out * attention.reshape(-1, 1, *([1] * unit.dim))
    out = unit.conv(x, stack_for_dense_conv(kernels, unit.groups))  # (B, g * K * C_out/g, *S)
    batch, size = out.shape[0], out.shape[2:]
    mixed = mix_responses(out.reshape(batch, unit.groups, count, -1), attention)
    return mixed.reshape(batch, unit.out_channels, *size)


def _unfold_dense(unit, x, kernels, attention, spatial):
    """All samples' columns times the K shared kernels as one (per group) matrix product, then mix."""
    batch = x.shape[0]
    count, c_out = kernels.shape[:2]
    groups = unit.groups
    positions = unit.output_positions(x)
    out = batch_product(unit, x, stack_for_dense_conv(kernels, groups), spatial)
    out = out.reshape(groups, count, c_out // groups * positions, batch)  # batch innermost
    if attention is None:
        out = out[:, 0]
    else:
        out = mix_batch_last(out, attention)
    out = out.reshape(c_out, positions, batch).permute(2, 0, 1)
    return out.reshape(batch, c_out, *unit.output_shape(x))


def _unfold_batched(unit, x, kernels, attention, spatial):
    """Every sample's columns times its own aggregated kernel, in one batched matrix product."""
    batch = x.shape[0]
    c_out, groups = kernels.shape[1], unit.groups
    positions = unit.output_positions(x)
    # fold the spatial attention into the smaller of the columns and the aggregated kernels
    on_columns = spatial is not None and unit.in_channels * positions <= c_out * (unit.in_channels // groups)

    def operands(x, kernels, attention, spatial):  # per-sample kernels (B, g, C_out/g, D), columns (B, g, D, L)
        cols = columns(unit, x, spatial if on_columns else None)
        weights = _aggregate(kernels, attention, None if on_columns else spatial)
        return weights.reshape(batch, groups, c_out // groups, cols.shape[2]), cols

    size = batch * (kernels[0].numel() + unit.in_channels * unit.kernel_volume * positions)
    out = rebuilt_operands(operands, torch.matmul, matmul_backward, x, kernels, attention, spatial, size=size)
    return out.reshape(batch, c_out, *unit.output_shape(x))


_PATHS = {"grouped": _grouped, "dense": _dense, "unfold": _unfold_batched, "unfold_dense": _unfold_dense}
