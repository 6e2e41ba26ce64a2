"""im2col (the unfolded input) as one strided copy with an exact hand-written adjoint.

``unfold`` gives ``F.unfold``'s columns, optionally times a per-sample spatial attention over the
kernel taps, in the sample-major layout (B, C k^d, L) or batch-last (C k^d, L, B), ready for one
matrix product over the whole batch. Under ``torch.compile`` it is plain differentiable ops, which
the compiler fuses by itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers.unit import ConvUnit


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
    2 to 8 numbers on ResNet-18's deep layers.
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
    runs over contiguous numbers.
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
    contiguous stretch; a (B,) vector broadcast over the columns would split every stretch into rows
    of B numbers.
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


def columns(unit, x, spatial):
    """Unfolded input (B, g, C_in/g * k^d, L), with the spatial attention folded in when given."""
    cols = unfold(unit, x, spatial)
    return cols.reshape(x.shape[0], unit.groups, -1, cols.shape[-1])


def batch_columns(unit, x, spatial):
    """Unfolded input of the whole batch as (g, C_in/g * k^d, L * B), spatial attention folded in."""
    cols = unfold(unit, x, spatial, batch_last=True)  # (C_in * k^d, L, B)
    return cols.reshape(unit.groups, -1, cols.shape[-2] * cols.shape[-1])
