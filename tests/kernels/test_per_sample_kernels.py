"""Every exact per-sample-kernel path (``dynlab.kernels.per_sample``) and its im2col, against the definition.

The paths against a per-sample loop (3x3 kernels) and against the plain ``grouped`` path on random
geometries (kernel sizes 1 to 5, any padding, strides, dilations, groups up to depthwise, batch 1 and 3,
K 1 and 4, 1D and 2D), outputs and gradients in float64; im2col and its adjoint against
``F.unfold``/``F.fold``; what backward keeps; the cost model's choices; every path under CPU autocast.
The gradients are checked both ways backward can get its operands: kept (small ones, as here) and
rebuilt (``recompute.KEEP_UP_TO`` set to 0, as for a full-width network). No timing here:
``python -m benchmarks paths`` times them.
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from dynlab.kernels import im2col, per_sample, recompute
from dynlab.layers.unit import ConvUnit
from kernel_cases import CASES

CONV = {1: F.conv1d, 2: F.conv2d}


def per_sample_reference(unit, x, kernels, attention, spatial):
    """The definition: y_b = conv(x_b, sum_k a_bk * s_b * W_k), one sample at a time."""
    outs = []
    for b in range(x.shape[0]):
        w = kernels
        if spatial is not None:
            w = w * spatial[b].reshape(1, 1, 1, *unit.kernel_size)
        w = w[0] if attention is None else (attention[b].reshape(-1, *([1] * (w.dim() - 1))) * w).sum(0)
        outs.append(CONV[unit.dim](x[b:b + 1], w, None, unit.stride, unit.padding, unit.dilation, unit.groups))
    return torch.cat(outs)


_MIX_CASES = [
    pytest.param(dim, stride, channels, dilation, batch, count, has_spatial,
                 id=f"d{dim}-s{stride}-io{channels[0]}x{channels[1]}g{channels[2]}-dil{dilation}-b{batch}-K{count}-{'sp' if has_spatial else 'nosp'}")
    for dim, stride, channels, dilation, batch, count, has_spatial in itertools.product(
        (1, 2), (1, 2), ((4, 6, 1), (4, 6, 2), (4, 4, 4)), (1, 2), (1, 3), (1, 4), (False, True)
    )
]


@pytest.fixture(params=["kept", "rebuilt"])
def operands(request, monkeypatch):
    """Whether backward gets the paths' operands kept by autograd or rebuilt (``dynlab.kernels.recompute``)."""
    if request.param == "rebuilt":
        monkeypatch.setattr(recompute, "KEEP_UP_TO", 0)
    return request.param


@pytest.mark.parametrize("dim,stride,channels,dilation,batch,count,has_spatial", _MIX_CASES)
def test_mixing_paths_equal_per_sample_loop(dim, stride, channels, dilation, batch, count, has_spatial, operands):
    c_in, c_out, groups = channels
    g = torch.Generator().manual_seed(hash((dim, stride, channels, dilation, batch, count, has_spatial)) % 2**31)
    k = 3
    unit = ConvUnit(c_in, c_out, k, stride=stride, padding=dilation, dilation=dilation, groups=groups, dim=dim)
    size = (7, 6) if dim == 2 else (11,)
    x = torch.randn(batch, c_in, *size, generator=g, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(count, c_out, c_in // groups, *unit.kernel_size, generator=g, dtype=torch.float64,
                          requires_grad=True)
    attention = torch.rand(batch, count, generator=g, dtype=torch.float64, requires_grad=True)
    spatial = (torch.rand(batch, k ** dim, generator=g, dtype=torch.float64, requires_grad=True)
               if has_spatial else None)
    inputs = [x, kernels, attention] + ([spatial] if has_spatial else [])

    expected = per_sample_reference(unit, x, kernels, attention, spatial)
    cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    expected_grads = torch.autograd.grad(expected, inputs, cotangent)
    for path in ("auto", *per_sample.applicable_paths(count, has_spatial)):
        out = per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10, msg=lambda m: f"path {path}: {m}")
        grads = torch.autograd.grad(out, inputs, cotangent)
        for what, got, want in zip(("input", "kernels", "attention", "spatial"), grads, expected_grads):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10,
                                       msg=lambda m: f"path {path}, gradient w.r.t. {what}: {m}")

    if count == 1:  # no kernel attention at all (odconv with K = 1)
        inputs = [x, kernels] + ([spatial] if has_spatial else [])
        expected = per_sample_reference(unit, x, kernels, None, spatial)
        expected_grads = torch.autograd.grad(expected, inputs, cotangent)
        for path in ("auto", *per_sample.applicable_paths(1, has_spatial)):
            out = per_sample.mix_kernels_per_sample(unit, x, kernels, None, spatial, path)
            torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
            for got, want in zip(torch.autograd.grad(out, inputs, cotangent), expected_grads):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_mixing_rejects_bad_path_and_missing_attention():
    unit = ConvUnit(4, 4, 3, padding=1)
    x, kernels = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 4, 3, 3)
    with pytest.raises(ValueError, match="path must be one of"):
        per_sample.mix_kernels_per_sample(unit, x, kernels, torch.rand(2, 2), path="fast")
    with pytest.raises(ValueError, match="kernel attention"):
        per_sample.mix_kernels_per_sample(unit, x, kernels, None)


def test_a_path_that_does_not_apply_is_refused_not_swapped():
    """``dense`` cannot apply a spatial attention and ``unfold`` needs K > 1: asked for, they say so."""
    unit = ConvUnit(4, 4, 3, padding=1)
    x, spatial = torch.randn(2, 4, 5, 5), torch.rand(2, 9)
    with pytest.raises(ValueError, match="'dense' cannot run this unit .*spatial.*paths that can: grouped, unfold, "
                                         "unfold_dense"):
        per_sample.mix_kernels_per_sample(unit, x, torch.randn(4, 4, 4, 3, 3), torch.rand(2, 4), spatial, "dense")
    with pytest.raises(ValueError, match="'unfold' cannot run this unit .*one kernel"):
        per_sample.mix_kernels_per_sample(unit, x, torch.randn(1, 4, 4, 3, 3), None, None, "unfold")
    assert per_sample.applicable_paths(1, True) == ("grouped", "unfold_dense")
    assert per_sample.applicable_paths(4, False) == ("grouped", "dense", "unfold", "unfold_dense")


TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("as_compiled", [False, True], ids=["eager", "as-compiled"])
@pytest.mark.parametrize("with_spatial", [False, True])
@pytest.mark.parametrize("batch_last", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"d{c[0]}-k{c[4]}-s{c[5]}-p{c[6]}-dil{c[7]}")
def test_im2col_and_its_adjoint_equal_unfold_and_fold(case, batch_last, with_spatial, as_compiled, monkeypatch):
    """``as_compiled``: the plain-ops version ``torch.compile`` traces instead of the hand-written one."""
    if as_compiled:
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    dim, c_in, c_out, groups, kernel, stride, padding, dilation, size = case
    unit = ConvUnit(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, dim=dim)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, c_in, *size, generator=g, dtype=torch.float64, requires_grad=True)
    spatial = torch.rand(3, unit.kernel_volume, generator=g, dtype=torch.float64, requires_grad=True)
    if dim == 2:
        expected = F.unfold(x, kernel, dilation, padding, stride)
    else:
        expected = F.unfold(x.unsqueeze(2), (1, *kernel), (1, *dilation), (0, *padding), (1, *stride))
    inputs = [x]
    if with_spatial:
        expected = (expected.reshape(3, c_in, unit.kernel_volume, -1) * spatial.reshape(3, 1, -1, 1)).reshape(
            expected.shape)
        inputs.append(spatial)
    got = im2col.unfold(unit, x, spatial if with_spatial else None, batch_last=batch_last)
    if batch_last:
        got = got.permute(2, 0, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    want = torch.autograd.grad(expected, inputs, cotangent)
    have = torch.autograd.grad(got, inputs, cotangent)
    for h, w in zip(have, want):
        torch.testing.assert_close(h, w, **TOL)


@pytest.mark.parametrize("count", [1, 4])
@pytest.mark.parametrize("has_spatial", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", CASES[:12], ids=lambda c: f"d{c[0]}-g{c[3]}-k{c[4]}-s{c[5]}")
def test_every_path_equals_the_grouped_path(case, batch, has_spatial, count):
    dim, c_in, c_out, groups, kernel, stride, padding, dilation, size = case
    unit = ConvUnit(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, dim=dim)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, c_in, *size, generator=g, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(count, *unit.weight_shape, generator=g, dtype=torch.float64, requires_grad=True)
    attention = torch.rand(batch, count, generator=g, dtype=torch.float64, requires_grad=True)
    spatial = (torch.rand(batch, unit.kernel_volume, generator=g, dtype=torch.float64, requires_grad=True)
               if has_spatial else None)
    for att in ([attention, None] if count == 1 else [attention]):
        inputs = [t for t in (x, kernels, att, spatial) if t is not None]
        expected = per_sample.mix_kernels_per_sample(unit, x, kernels, att, spatial, "grouped")
        cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
        want = torch.autograd.grad(expected, inputs, cotangent)
        assert per_sample.choose_path(unit, x, count, has_spatial) in per_sample.PATHS
        for path in ("auto", *per_sample.applicable_paths(count, has_spatial)):
            out = per_sample.mix_kernels_per_sample(unit, x, kernels, att, spatial, path)
            torch.testing.assert_close(out, expected, **TOL, msg=lambda m: f"{path}: {m}")
            for have, w in zip(torch.autograd.grad(out, inputs, cotangent), want):
                torch.testing.assert_close(have, w, **TOL, msg=lambda m: f"{path} gradient: {m}")


def test_aggregation_never_materialises_batch_times_kernels():
    """The per-sample kernels are built by one (B, K) x (K, w) product; peak size B x w, not B x K x w."""
    kernels = torch.randn(4, 8, 8, 3, 3)
    attention, spatial = torch.rand(5, 4), torch.rand(5, 9)
    weights = per_sample._aggregate(kernels, attention, spatial)
    expected = torch.einsum("bk,bkoihw->boihw", attention, kernels.unsqueeze(0) * spatial.reshape(5, 1, 1, 1, 3, 3))
    torch.testing.assert_close(weights, expected)


def test_choose_path_prefers_dense_convolutions_on_tiny_maps_and_aggregation_on_large_ones():
    deep = ConvUnit(512, 512, 3, padding=1)
    shallow = ConvUnit(64, 64, 3, padding=1)
    assert per_sample.choose_path(deep, torch.empty(32, 512, 2, 2), 4, False) in ("dense", "unfold_dense")
    assert per_sample.choose_path(shallow, torch.empty(32, 64, 64, 64), 4, True) != "unfold_dense"
    assert per_sample.choose_path(shallow, torch.empty(2, 64, 8, 8), 1, False) == "dense"


def test_choose_path_takes_the_dense_convolution_on_cuda_wherever_it_applies():
    """Measured on an H200: launch-bound there, dense won at every ResNet-18 shape (benchmarks/results/README.md)."""
    from types import SimpleNamespace

    unit = ConvUnit(64, 64, 3, padding=1)
    for size in (2, 16, 64):
        on_cuda = SimpleNamespace(shape=(32, 64, size, size), device=torch.device("cuda"))
        assert per_sample.choose_path(unit, on_cuda, 4, False) == "dense"
        assert per_sample.choose_path(unit, on_cuda, 4, True) != "dense"  # no dense path with spatial attention
    assert per_sample.choose_path(unit, torch.empty(32, 64, 64, 64), 4, False) != "dense"  # the CPU's cost model


def kept_for_backward(path, dim):
    """The largest tensor a path's forward leaves for backward beyond its inputs, and the sizes of the
    unfolded input and of the B per-sample kernels; backward is run to check it works from what was kept."""
    g = torch.Generator().manual_seed(dim)
    batch, c_in, c_out, count = 8, 32, 8, 4  # responses (B K C_out L) smaller than both
    unit = ConvUnit(c_in, c_out, 3, padding=1, dim=dim)
    size = (4, 4) if dim == 2 else (16,)
    x = torch.randn(batch, c_in, *size, generator=g, requires_grad=True)
    kernels = torch.randn(count, c_out, c_in, *unit.kernel_size, generator=g, requires_grad=True)
    attention = torch.rand(batch, count, generator=g, requires_grad=True)
    spatial = torch.rand(batch, 3 ** dim, generator=g, requires_grad=True)
    inputs = {t.untyped_storage().data_ptr() for t in (x, kernels, attention, spatial)}
    kept = []

    def pack(t):
        if t.untyped_storage().data_ptr() not in inputs:
            kept.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
    out.sum().backward()
    assert all(t.grad is not None for t in (x, kernels, attention, spatial))
    columns = batch * c_in * unit.kernel_volume * out[0, 0].numel()
    return max(kept, default=0), columns, batch * c_out * c_in * unit.kernel_volume


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("path", ["grouped", "unfold", "unfold_dense"])
def test_per_sample_paths_keep_neither_columns_nor_per_sample_kernels_for_backward(path, dim, monkeypatch):
    """What autograd keeps is the inputs, not the unfolded input or the B kernels (recompute.py), once
    these are larger than ``KEEP_UP_TO`` elements (here made 0)."""
    monkeypatch.setattr(recompute, "KEEP_UP_TO", 0)
    largest, columns, per_sample_kernels = kept_for_backward(path, dim)
    assert largest < min(columns, per_sample_kernels)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("path", ["grouped", "unfold", "unfold_dense"])
def test_small_operands_are_kept_for_backward_not_rebuilt(path, dim):
    """Below ``KEEP_UP_TO`` elements the operands are kept, as the plain composition keeps them."""
    largest, columns, per_sample_kernels = kept_for_backward(path, dim)
    assert columns + per_sample_kernels <= recompute.KEEP_UP_TO
    assert largest >= min(columns, per_sample_kernels)


CPU = torch.device("cpu")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.detach().float() - want.detach()).norm() / want.detach().norm())


@pytest.mark.parametrize("path", per_sample.PATHS)
@pytest.mark.parametrize("dim", [1, 2])
def test_every_mixing_path_under_cpu_autocast(path, dim):
    g = torch.Generator().manual_seed(dim)
    unit = ConvUnit(8, 8, 3, padding=1, dim=dim)
    x = torch.randn(3, 8, *((9, 9) if dim == 2 else (20,)), generator=g)
    kernels = torch.randn(4, 8, 8, *unit.kernel_size, generator=g)
    attention = torch.rand(3, 4, generator=g)
    spatial = torch.rand(3, 3 ** dim, generator=g) if path != "dense" else None
    inputs = [t.requires_grad_() for t in (x, kernels, attention, spatial) if t is not None]
    want = per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
    cotangent = torch.randn(want.shape, generator=g)
    want_grads = torch.autograd.grad(want, inputs, cotangent)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = per_sample.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
    assert relative_error(got, want) < 0.03
    got_grads = torch.autograd.grad(got, inputs, cotangent.to(got.dtype))
    for name, got_grad, want_grad in zip(("input", "kernels", "attention", "spatial"), got_grads, want_grads):
        assert got_grad.dtype == torch.float32, name
        assert relative_error(got_grad, want_grad) < 0.05, name
