"""Exact ways to convolve each sample with its own kernel, W_b = sum_k a_bk (s_b * W_k).

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

With K = 1 ``unfold`` and ``unfold_dense`` are the same algorithm (one shared kernel, no aggregation).
``auto`` picks by a cost model on the shapes; see ``choose_path``. The kernel aggregation is one
matrix product (B, K) x (K, weights), and the spatial attention is applied once to the aggregated
kernel, so no B x K x weights tensor is ever materialised. For backward, the ``grouped``,
``unfold`` and ``unfold_dense`` paths keep their small inputs and rebuild the unfolded input and the
per-sample kernels there (``recompute.py``), not the large operands themselves.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._unit import ConvUnit, stack_for_dense_conv
from .recompute import compute_dtype, matmul_backward, rebuilt_operands

PATHS = ("auto", "grouped", "dense", "unfold", "unfold_dense")

#: Cost-model weights, in static-convolution MACs, calibrated by ``benchmarks/unit_paths.py`` (forward
#: and backward of ResNet-18's unit shapes at batch 32) on a 2-core x86 CPU; they only rank the paths.
GROUPED_CONV = 1.2  # batch-as-groups convolution: per MAC, a little slower than a dense one ...
GROUPED_WEIGHT = 40.0  # ... plus, per sample, reading and writing its own kernel (memory-bound)
BATCHED_CONV = 1.5  # per-sample matrix products over the unfolded input
AGGREGATION = 16.0  # per aggregated weight, kept in memory and read back by the batched products
BATCH_GEMM = 0.9  # one matrix product over the whole batch, per MAC
IM2COL = 100.0  # per unfolded element: the strided copy, the spatial product and their backward
TINY_MAPS = 4.0  # a dense convolution with K x C_out filters slows down on maps of few positions
#: output positions at or below which ``stacked_conv`` multiplies im2col columns instead (CPU only)
TINY_OUTPUT = 4


def path_costs(unit: ConvUnit, x: torch.Tensor, kernels: int, has_spatial: bool) -> dict[str, float]:
    """Estimated cost of each applicable exact path, in static-convolution MACs per sample.

    With P output positions and w weights per kernel one convolution is P w MACs and its unfolded
    input has C_in k^d P elements. ``dense`` and ``unfold_dense`` run K convolutions at full speed;
    ``grouped`` and ``unfold`` run one, but build and stream a kernel per sample (K w each), which is
    memory-bound: they win on large maps, where that is small against P w.
    """
    positions = unit.output_positions(x)
    weights = unit.out_channels * (unit.in_channels // unit.groups) * unit.kernel_volume
    conv = positions * weights
    columns = unit.in_channels * unit.kernel_volume * positions
    costs = {
        "grouped": GROUPED_CONV * conv + GROUPED_WEIGHT * (kernels + 1) * weights,
        "unfold_dense": BATCH_GEMM * kernels * conv + IM2COL * columns,
    }
    if kernels > 1:
        costs["unfold"] = BATCHED_CONV * conv + IM2COL * columns + AGGREGATION * kernels * weights
    if not has_spatial:
        costs["dense"] = kernels * conv * (1 + TINY_MAPS / positions)
    return costs


def choose_path(unit: ConvUnit, x: torch.Tensor, kernels: int, has_spatial: bool) -> str:
    """The cheapest path by ``path_costs`` (a plain convolution when there is nothing to aggregate).

    On ResNet-18 at batch 32 this picks ``grouped`` on the first stage's large maps, ``unfold``
    (dyconv, odconv4x) or ``unfold_dense`` (odconv) on mid-sized ones and ``unfold_dense`` on the
    tiny maps of the last stages. The weights were calibrated on a CPU. On CUDA, where these layers
    are bound by kernel launches rather than MACs, ``dense`` (one cuDNN convolution with K x C_out
    filters, one batched mix) was the fastest path at every ResNet-18 shape and is taken wherever it
    applies (``benchmarks/results/cuda_h200.md``: dyconv's training step 48 -> 30 ms on an H200).
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
    if path == "auto":
        path = choose_path(unit, x, count, spatial is not None)
    if path == "grouped":
        return _grouped(unit, x, kernels, attention, spatial)
    if path == "dense" and spatial is None:
        return _dense(unit, x, kernels, attention)
    if path in ("unfold_dense", "dense") or (path == "unfold" and (count == 1 or attention is None)):
        return _unfold_dense(unit, x, kernels, attention, spatial)
    if path == "unfold":
        return _unfold_batched(unit, x, kernels, attention, spatial)
    raise ValueError(f"path must be one of {PATHS}, got {path!r}")


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


def mix_responses(responses: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """sum_k a[b, k] r[b, g, k, ...] for r laid out (B, g, K, ...): one batched (1 x K) x (K x N) product.

    The layout is the one a dense convolution with ``stack_for_dense_conv`` kernels produces, so
    the K responses are mixed without transposing them. Returns (B, g * rest).
    """
    batch, groups, count = responses.shape[:3]
    r = responses.reshape(batch * groups, count, -1)
    a = attention.repeat_interleave(groups, dim=0) if groups > 1 else attention
    return torch.bmm(a.unsqueeze(1).to(r.dtype), r).reshape(batch, -1)


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

    out = rebuilt_operands(operands, conv, conv_backward, x, kernels, attention, spatial)
    return out.reshape(batch, unit.out_channels, *out.shape[2:])


def _dense(unit, x, kernels, attention):
    count = kernels.shape[0]
    if count == 1:
        out = unit.conv(x, kernels[0])
        return out if attention is None else out * attention.reshape(-1, 1, *([1] * unit.dim))
    out = unit.conv(x, stack_for_dense_conv(kernels, unit.groups))  # (B, g * K * C_out/g, *S)
    batch, spatial = out.shape[0], out.shape[2:]
    mixed = mix_responses(out.reshape(batch, unit.groups, count, -1), attention)
    return mixed.reshape(batch, unit.out_channels, *spatial)


class _Im2col(torch.autograd.Function):
    """im2col of a 2D input as one strided copy, optionally times a per-sample spatial attention.

    Same values as ``F.unfold`` (times s[b, tap] when ``spatial`` is given) and the exact adjoint:
    the gradient of the input is k^2 strided in-place multiply-adds, that of the attention k^2
    reductions over a strided view of the padded input (nothing unfolded is kept for it). Each
    direction is a few large memory-bound kernels, where ``F.unfold``/``F.fold`` plus a separate
    product take several times longer on a CPU and slow down badly on a busy one.

    ``batch_last`` lays the columns out (C k^2, L, B) instead of (B, C k^2, L), ready for one matrix
    product over the whole batch. The padded input is then kept batch-last too, (C, H, W, B) in
    memory, so that every copy, product and reduction here runs along the batch (and the row) in
    long contiguous stretches. In the sample-major layout the innermost stretch is one output row,
    2 to 8 numbers on ResNet-18's deep layers: there ``odconv``'s units (forward and backward, batch
    32, 8x8 to 2x2 maps) took 1.6 to 2.1 times as long (``benchmarks/results/cpu_batch_last_im2col.md``).
    """

    @staticmethod
    def forward(ctx, x, spatial, kernel_size, dilation, padding, stride, batch_last):
        (kh, kw), (dh, dw), (sh, sw) = kernel_size, dilation, stride
        xp = _padded(x, padding, batch_last)  # (B, C, Hp, Wp), in memory (C, Hp, Wp, B) when batch_last
        batch, channels, hp, wp = xp.shape
        ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
        ctx.geometry = (x.shape, (ho, wo), kernel_size, dilation, padding, stride, batch_last)
        ctx.save_for_backward(xp if spatial is not None and spatial.requires_grad else None, spatial)
        view = _tap_view(xp, ctx.geometry)  # (B, C, kh, kw, ho, wo)
        taps = None
        if batch_last:
            view = view.permute(1, 2, 3, 4, 5, 0)
            if spatial is not None:
                taps = _batch_last_taps(spatial, kh, kw, wo).reshape(1, kh, kw, 1, wo, batch)
        elif spatial is not None:
            taps = spatial.reshape(batch, 1, kh, kw, 1, 1)
        if taps is not None:  # multiply while copying: one pass, written in the layout asked for
            view = torch.mul(view, taps, out=xp.new_empty(view.shape))
        if batch_last:
            return view.reshape(channels * kh * kw, ho * wo, batch)
        return view.reshape(batch, channels * kh * kw, ho * wo)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        shape, (ho, wo), (kh, kw), (dh, dw), (ph, pw), (sh, sw), batch_last = ctx.geometry
        xp, spatial = ctx.saved_tensors
        batch, channels, h, w = shape
        if batch_last:  # viewed (B, C, kh, kw, ho, wo) as below, the batch innermost in memory
            grad = grad.reshape(channels, kh, kw, ho, wo, batch).permute(5, 0, 1, 2, 3, 4)
        else:
            grad = grad.reshape(batch, channels, kh, kw, ho, wo)
        grad_x = grad_spatial = None
        if ctx.needs_input_grad[0]:
            if batch_last:
                padded = grad.new_zeros(channels, h + 2 * ph, w + 2 * pw, batch).permute(3, 0, 1, 2)
            else:
                padded = grad.new_zeros(batch, channels, h + 2 * ph, w + 2 * pw)
            taps = None
            if spatial is not None:  # for tap (i, j): (B, 1, 1, wo), batch-last like the gradient when it is
                taps = (_batch_last_taps(spatial, kh, kw, wo).permute(3, 0, 1, 2)[:, :, :, None, None, :]
                        if batch_last else spatial.reshape(batch, kh, kw, 1, 1, 1))
            for i in range(kh):
                for j in range(kw):
                    target = padded[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                    if taps is None:
                        target += grad[:, :, i, j]
                    else:
                        target.addcmul_(grad[:, :, i, j], taps[:, i, j])
            grad_x = padded[:, :, ph:ph + h, pw:pw + w]
            grad_x = grad_x.contiguous() if batch_last else grad_x
        if xp is not None:
            grad_spatial = _spatial_grad(_tap_view(xp, ctx.geometry), grad, batch_last)
        return grad_x, grad_spatial, None, None, None, None, None


def _spatial_grad(view, grad, batch_last):
    """(B, k^2): for each tap, the sum over channels and positions of input view times column gradient.

    ``view``, ``grad``: (B, C, kh, kw, ho, wo), batch-last in memory when ``batch_last``. One tap at
    a time, in memory order, so that each product is k^2 times smaller than the columns and each sum
    runs over contiguous numbers (one sum over the whole 6-D product took up to 6 times longer).
    """
    batch, _, kh, kw = view.shape[:4]
    if batch_last:
        view, grad = view.permute(1, 2, 3, 4, 5, 0), grad.permute(1, 2, 3, 4, 5, 0)
        per_tap = [(view[:, i, j] * grad[:, i, j]).reshape(-1, batch).sum(0) for i in range(kh) for j in range(kw)]
    else:
        per_tap = [(view[:, :, i, j] * grad[:, :, i, j]).reshape(batch, -1).sum(1)
                   for i in range(kh) for j in range(kw)]
    return torch.stack(per_tap, dim=1)


def _padded(x, padding, batch_last):
    """x zero-padded by ``padding`` (h, w); with ``batch_last`` laid out (C, H, W, B) in memory,
    still indexed (B, C, H, W)."""
    ph, pw = padding
    if not batch_last:
        return F.pad(x, (pw, pw, ph, ph))
    batch, channels, h, w = x.shape
    xp = x.new_zeros(channels, h + 2 * ph, w + 2 * pw, batch)
    xp[:, ph:ph + h, pw:pw + w] = x.permute(1, 2, 3, 0)
    return xp.permute(3, 0, 1, 2)


def _batch_last_taps(spatial, kh, kw, wo):
    """The attention (B, k^2) as (kh, kw, wo, B), repeated along the output columns.

    Multiplied into batch-last tensors, it then runs with them along (output column, sample) in one
    contiguous stretch. A (B,) vector broadcast over the columns instead split every stretch into
    rows of B numbers: the copy-and-multiply took twice as long as a plain copy on ResNet-18's 4x4
    and 2x2 maps, and now takes about as long.
    """
    batch = spatial.shape[0]
    return spatial.t().reshape(kh, kw, 1, batch).expand(kh, kw, wo, batch).contiguous()


def _tap_view(xp, geometry):
    """(B, C, kh, kw, ho, wo) strided view of the padded input: the unfolded input, without copying."""
    _, (ho, wo), (kh, kw), (dh, dw), _, (sh, sw), _ = geometry
    b_, c_, h_, w_ = xp.stride()
    return xp.as_strided((*xp.shape[:2], kh, kw, ho, wo), (b_, c_, dh * h_, dw * w_, sh * h_, sw * w_))


def unfold(unit: ConvUnit, x: torch.Tensor, spatial: torch.Tensor | None = None,
           batch_last: bool = False) -> torch.Tensor:
    """im2col for 1D and 2D: (B, C_in, *S) -> (B, C_in * prod(k), L), or (C_in * prod(k), L, B).

    With ``spatial`` (B, prod(k)) every column entry of kernel position j is multiplied by spatial[b, j].
    """
    im2col = _plain_im2col if torch.compiler.is_compiling() else _Im2col.apply
    if unit.dim == 2:
        return im2col(x, spatial, unit.kernel_size, unit.dilation, unit.padding, unit.stride, batch_last)
    return im2col(
        x.unsqueeze(2), spatial, (1, *unit.kernel_size), (1, *unit.dilation), (0, *unit.padding),
        (1, *unit.stride), batch_last,
    )


def _plain_im2col(x, spatial, kernel_size, dilation, padding, stride, batch_last):
    """``_Im2col`` in plain differentiable ops, for ``torch.compile``: it fuses the copy, the product and
    their backward by itself, and does not trace the hand-written backward's strided in-place views."""
    cols = F.unfold(x, kernel_size, dilation, padding, stride)  # (B, C k^2, L)
    batch, _, positions = cols.shape
    taps = kernel_size[0] * kernel_size[1]
    if spatial is not None:
        cols = (cols.reshape(batch, -1, taps, positions) * spatial.reshape(batch, 1, taps, 1)).reshape(cols.shape)
    if batch_last:
        return cols.permute(1, 2, 0)
    return cols


def _columns(unit, x, spatial):
    """Unfolded input (B, g, C_in/g * k^d, L), with the spatial attention folded in when given."""
    cols = unfold(unit, x, spatial)
    return cols.reshape(x.shape[0], unit.groups, -1, cols.shape[-1])


def _batch_columns(unit, x, spatial):
    """Unfolded input of the whole batch as (g, C_in/g * k^d, L * B), spatial attention folded in."""
    cols = unfold(unit, x, spatial, batch_last=True)  # (C_in * k^d, L, B)
    return cols.reshape(unit.groups, -1, cols.shape[-2] * cols.shape[-1])


def _batch_product(unit, x, stacked, spatial):
    """Stacked kernels (``stack_for_dense_conv``'s order) times the whole batch's columns, one matrix
    product per group: (g, K C_out/g, L B). Backward rebuilds the columns instead of keeping them."""
    groups = unit.groups

    def operands(x, stacked, spatial):  # the kernels (g, K C_out/g, D), the columns (g, D, L B)
        return stacked.reshape(groups, stacked.shape[0] // groups, -1), _batch_columns(unit, x, spatial)

    return rebuilt_operands(operands, torch.bmm, matmul_backward, x, stacked, spatial)


def _unfold_dense(unit, x, kernels, attention, spatial):
    """All samples' columns times the K shared kernels as one (per group) matrix product, then mix."""
    batch = x.shape[0]
    count, c_out = kernels.shape[:2]
    groups = unit.groups
    positions = unit.output_positions(x)
    out = _batch_product(unit, x, stack_for_dense_conv(kernels, groups), spatial)
    out = out.reshape(groups, count, c_out // groups * positions, batch)  # batch innermost
    if attention is None:
        out = out[:, 0]
    else:
        out = _mix_batch_last(out, attention)
    out = out.reshape(c_out, positions, batch).permute(2, 0, 1)
    return out.reshape(batch, c_out, *unit.output_shape(x))


def _mix_batch_last(responses: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """sum_k a[b, k] r[g, k, m, b] for responses laid out (g, K, M, B), batch innermost: (g, M, B).

    A broadcast product summed over K, in the layout the batch product leaves. ``mix_responses``
    would need the samples outermost; there a (B, K, M) view of this layout made the batched
    product copy every sample's K x M block first, in its forward and again in its backward
    (about 20 ms of ``dyconv``'s 600 ms training step on ResNet-18's last two stages).
    """
    batch = responses.shape[-1]
    return (responses * attention.t().reshape(1, -1, 1, batch).to(responses.dtype)).sum(1)


def stacked_conv(unit: ConvUnit, x: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """``unit.conv(x, stacked)`` for K kernels stacked by ``stack_for_dense_conv``: (B, g * K * C_out/g, *S).

    What ``orient`` and ``local`` compute before pooling or mixing their R (K) responses. On the CPU,
    for an output of at most ``TINY_OUTPUT`` positions (ResNet-18's last stage at 64x64), it is one
    im2col matrix product over the whole batch, the ``unfold_dense`` product: with 512 channels on
    2x2 maps, forward and backward took 3.4x a static convolution against the stacked convolution's
    7.3x (2.2x against 4.1x for the stride-2 256 -> 512 unit); on 4x4 maps and larger the convolution
    was as fast or faster. On CUDA the convolution stays.
    """
    positions = unit.output_positions(x)
    if x.device.type != "cpu" or positions > TINY_OUTPUT:
        return unit.conv(x, stacked)
    filters = stacked.shape[0]
    out = _batch_product(unit, x, stacked, None).reshape(filters, positions, x.shape[0]).permute(2, 0, 1)
    return out.reshape(x.shape[0], filters, *unit.output_shape(x))


def _unfold_batched(unit, x, kernels, attention, spatial):
    """Every sample's columns times its own aggregated kernel, in one batched matrix product."""
    batch = x.shape[0]
    c_out, groups = kernels.shape[1], unit.groups
    positions = unit.output_positions(x)
    # fold the spatial attention into the smaller of the columns and the aggregated kernels
    on_columns = spatial is not None and unit.in_channels * positions <= c_out * (unit.in_channels // groups)

    def operands(x, kernels, attention, spatial):  # per-sample kernels (B, g, C_out/g, D), columns (B, g, D, L)
        cols = _columns(unit, x, spatial if on_columns else None)
        weights = _aggregate(kernels, attention, None if on_columns else spatial)
        return weights.reshape(batch, groups, c_out // groups, cols.shape[2]), cols

    out = rebuilt_operands(operands, torch.matmul, matmul_backward, x, kernels, attention, spatial)
    return out.reshape(batch, c_out, *unit.output_shape(x))
