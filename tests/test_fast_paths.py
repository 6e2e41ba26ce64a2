"""The fast paths of issue 4 give the plain paths' outputs and gradients (float64).

tests/test_layers.py checks every mixing path against a per-sample loop for 3x3 kernels. Here:
the strided im2col and its adjoint against ``F.unfold``/``F.fold``; every path against the plain
``grouped`` path on random shapes (kernel sizes 1 to 5, non-square kernels, any padding, strides,
dilations, groups up to depthwise, batch 1 and 3, K 1 and 4, 1D and 2D), outputs and gradients;
and the in-place mixing of ``local`` and the orientation max of ``orient`` against their plain
formulas, gradients included. No timing here: speed is what ``benchmarks/step_time.py`` reports.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from dynlab import layers
from dynlab.layers import mixing
from dynlab.layers._unit import ConvUnit, stack_for_dense_conv, unstack_dense_output

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_case(seed: int):
    """A random conv geometry: (dim, c_in, c_out, groups, kernel, stride, padding, dilation, size)."""
    rng = random.Random(seed)
    dim = rng.choice((1, 2))
    groups = rng.choice((1, 2, 3))
    c_in = groups * rng.choice((1, 2))
    c_out = groups * rng.choice((1, 2))
    if rng.random() < 0.25:  # depthwise
        c_in = c_out = groups = rng.choice((2, 3))
    kernel = tuple(rng.choice((1, 2, 3, 5)) for _ in range(dim))
    stride = tuple(rng.choice((1, 2, 3)) for _ in range(dim))
    dilation = tuple(rng.choice((1, 2)) for _ in range(dim))
    padding = tuple(rng.randint(0, d * (k - 1)) for k, d in zip(kernel, dilation))
    size = tuple(d * (k - 1) + 1 + rng.randint(0, 6) for k, d in zip(kernel, dilation))
    return dim, c_in, c_out, groups, kernel, stride, padding, dilation, size


CASES = [_random_case(seed) for seed in range(24)]


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
    got = mixing.unfold(unit, x, spatial if with_spatial else None, batch_last=batch_last)
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
        expected = mixing.mix_kernels_per_sample(unit, x, kernels, att, spatial, "grouped")
        cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
        want = torch.autograd.grad(expected, inputs, cotangent)
        assert mixing.choose_path(unit, x, count, has_spatial) in mixing.PATHS
        for path in ("auto", "dense", "unfold", "unfold_dense"):
            out = mixing.mix_kernels_per_sample(unit, x, kernels, att, spatial, path)
            torch.testing.assert_close(out, expected, **TOL, msg=lambda m: f"{path}: {m}")
            for have, w in zip(torch.autograd.grad(out, inputs, cotangent), want):
                torch.testing.assert_close(have, w, **TOL, msg=lambda m: f"{path} gradient: {m}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"d{c[0]}-g{c[3]}-k{c[4]}-s{c[5]}-p{c[6]}")
def test_stacked_conv_as_one_matrix_product_equals_the_convolution(case, monkeypatch):
    """``stacked_conv``'s im2col product (taken on tiny outputs; here on every output) = the convolution."""
    monkeypatch.setattr(mixing, "TINY_OUTPUT", 10**9)
    dim, c_in, c_out, groups, kernel, stride, padding, dilation, size = case
    unit = ConvUnit(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, dim=dim)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, c_in, *size, generator=g, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(4, *unit.weight_shape, generator=g, dtype=torch.float64, requires_grad=True)
    stacked = stack_for_dense_conv(kernels, groups)
    expected = unit.conv(x, stacked)
    got = mixing.stacked_conv(unit, x, stacked)
    torch.testing.assert_close(got, expected, **TOL)
    cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    for have, want in zip(torch.autograd.grad(got, [x, kernels], cotangent),
                          torch.autograd.grad(expected, [x, kernels], cotangent)):
        torch.testing.assert_close(have, want, **TOL)


def test_stacked_conv_takes_the_matrix_product_only_on_tiny_cpu_outputs(monkeypatch):
    calls, original = [], mixing._batch_columns
    monkeypatch.setattr(mixing, "_batch_columns", lambda *args: calls.append(args) or original(*args))
    unit = ConvUnit(8, 8, 3, padding=1)
    stacked = torch.randn(32, 8, 3, 3)
    mixing.stacked_conv(unit, torch.randn(2, 8, 4, 4), stacked)  # 16 output positions: the convolution
    assert not calls
    out = mixing.stacked_conv(unit, torch.randn(2, 8, 2, 2), stacked)  # 4 positions: the product
    assert len(calls) == 1 and out.shape == (2, 32, 2, 2)


def test_aggregation_never_materialises_batch_times_kernels():
    """The per-sample kernels are built by one (B, K) x (K, w) product; peak size B x w, not B x K x w."""
    kernels = torch.randn(4, 8, 8, 3, 3)
    attention, spatial = torch.rand(5, 4), torch.rand(5, 9)
    weights = mixing._aggregate(kernels, attention, spatial)
    expected = torch.einsum("bk,bkoihw->boihw", attention, kernels.unsqueeze(0) * spatial.reshape(5, 1, 1, 1, 3, 3))
    torch.testing.assert_close(weights, expected)


def test_choose_path_prefers_dense_convolutions_on_tiny_maps_and_aggregation_on_large_ones():
    deep = ConvUnit(512, 512, 3, padding=1)
    shallow = ConvUnit(64, 64, 3, padding=1)
    assert mixing.choose_path(deep, torch.empty(32, 512, 2, 2), 4, False) in ("dense", "unfold_dense")
    assert mixing.choose_path(shallow, torch.empty(32, 64, 64, 64), 4, True) != "unfold_dense"
    assert mixing.choose_path(shallow, torch.empty(2, 64, 8, 8), 1, False) == "dense"


def test_choose_path_takes_the_dense_convolution_on_cuda_wherever_it_applies():
    """Measured on an H200: launch-bound there, dense won at every ResNet-18 shape (cuda_h200.md)."""
    from types import SimpleNamespace

    unit = ConvUnit(64, 64, 3, padding=1)
    for size in (2, 16, 64):
        on_cuda = SimpleNamespace(shape=(32, 64, size, size), device=torch.device("cuda"))
        assert mixing.choose_path(unit, on_cuda, 4, False) == "dense"
        assert mixing.choose_path(unit, on_cuda, 4, True) != "dense"  # no dense path with spatial attention
    assert mixing.choose_path(unit, torch.empty(32, 64, 64, 64), 4, False) != "dense"  # the CPU's cost model


def _plain_local(unit, x):
    """DESIGN §3's formula with the reordered K responses and einsum: the path ``local`` had before."""
    attention = unit.pixel_attention(x)
    responses = unstack_dense_output(unit.conv(x, stack_for_dense_conv(unit.weight, unit.groups)), unit.kernels,
                                     unit.groups)
    if unit.bias is not None:
        responses = responses + unit.bias.reshape(1, unit.kernels, unit.out_channels, *([1] * unit.dim))
    return torch.einsum("bk...,bko...->bo...", attention, responses)


def _plain_orient(unit, x):
    kernels = stack_for_dense_conv(layers.orient.oriented_kernels(unit.weight, unit.dim), unit.groups)
    responses = unstack_dense_output(unit.conv(x, kernels), unit.orientations, unit.groups)
    best = responses.amax(dim=1)
    return best if unit.bias is None else best + unit.bias.reshape(1, -1, *([1] * unit.dim))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name,plain", [("local", _plain_local), ("orient", _plain_orient)])
def test_local_and_orient_equal_their_plain_formulas(name, plain, dim, groups, bias):
    torch.manual_seed(3)
    unit = layers.build(name, 4, 8 if groups < 4 else 4, 3, dim=dim, padding=1, groups=groups, bias=bias).double()
    with torch.no_grad():
        if unit.bias is not None:
            unit.bias.normal_()
    x = torch.randn(3, 4, *((5, 6) if dim == 2 else (9,)), dtype=torch.float64, requires_grad=True)
    params = [x] + [p for p in unit.parameters()]
    expected = plain(unit, x)
    cotangent = torch.randn(expected.shape, dtype=torch.float64)
    want = torch.autograd.grad(expected, params, cotangent, allow_unused=True)
    out = unit(x)
    torch.testing.assert_close(out, expected, **TOL)
    for have, w in zip(torch.autograd.grad(out, params, cotangent, allow_unused=True), want):
        if w is None:
            assert have is None or not have.any()
        else:
            torch.testing.assert_close(have, w, **TOL)
    with torch.no_grad():  # the inference branch (amax for orient) gives the same values
        torch.testing.assert_close(unit(x), expected, **TOL)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("path", ["grouped", "unfold", "unfold_dense"])
def test_per_sample_paths_keep_neither_columns_nor_per_sample_kernels_for_backward(path, dim):
    """What autograd keeps is the inputs, not the unfolded input or the B kernels (recompute.py)."""
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
        out = mixing.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
    columns = batch * c_in * unit.kernel_volume * out[0, 0].numel()
    per_sample_kernels = batch * c_out * c_in * unit.kernel_volume
    assert max(kept, default=0) < min(columns, per_sample_kernels)
    out.sum().backward()  # and backward still works from what was kept
    assert all(t.grad is not None for t in (x, kernels, attention, spatial))
