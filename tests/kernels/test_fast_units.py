"""The fast units of ``dynlab.kernels`` compute what their layers' plain forwards do."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import kernels, layers
from dynlab.kernels import products
from dynlab.kernels.products import stack_for_dense_conv, unstack_dense_output
from dynlab.layers.unit import ConvUnit
from kernel_cases import CASES

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"d{c[0]}-g{c[3]}-k{c[4]}-s{c[5]}-p{c[6]}")
def test_stacked_conv_as_one_matrix_product_equals_the_convolution(case, monkeypatch):
    """``stacked_conv``'s im2col product (taken on tiny outputs; here on every output) = the convolution."""
    monkeypatch.setattr(products, "TINY_OUTPUT", 10**9)
    dim, c_in, c_out, groups, kernel, stride, padding, dilation, size = case
    unit = ConvUnit(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, dim=dim)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, c_in, *size, generator=g, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(4, *unit.weight_shape, generator=g, dtype=torch.float64, requires_grad=True)
    stacked = stack_for_dense_conv(kernels, groups)
    expected = unit.conv(x, stacked)
    got = products.stacked_conv(unit, x, stacked)
    torch.testing.assert_close(got, expected, **TOL)
    cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    for have, want in zip(torch.autograd.grad(got, [x, kernels], cotangent),
                          torch.autograd.grad(expected, [x, kernels], cotangent)):
        torch.testing.assert_close(have, want, **TOL)


def test_stacked_conv_takes_the_matrix_product_only_on_tiny_cpu_outputs(monkeypatch):
    calls, original = [], products.batch_columns
    monkeypatch.setattr(products, "batch_columns", lambda *args: calls.append(args) or original(*args))
    unit = ConvUnit(8, 8, 3, padding=1)
    stacked = torch.randn(32, 8, 3, 3)
    products.stacked_conv(unit, torch.randn(2, 8, 4, 4), stacked)  # 16 output positions: the convolution
    assert not calls
    out = products.stacked_conv(unit, torch.randn(2, 8, 2, 2), stacked)  # 4 positions: the product
    assert len(calls) == 1 and out.shape == (2, 32, 2, 2)


def _plain_local(unit, x):
    """The pixel mixture written with reordered K responses and einsum: the path ``local`` had before."""
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


@pytest.mark.parametrize("dim,groups", [(1, 1), (2, 1), (2, 2)])
def test_local_mix_gradients_are_the_plain_mixtures(dim, groups):
    """``_PixelMix``'s hand-written backward against autograd through the plain sum, float64."""
    unit = layers.build("local", 4, 6, 3, dim=dim, padding=1, groups=groups, bias=True).double()
    g = torch.Generator().manual_seed(0)
    spatial = (5,) * dim
    responses = torch.randn(3, unit.kernels * 6, *spatial, generator=g, dtype=torch.float64, requires_grad=True)
    attention = torch.rand(3, unit.kernels, *spatial, generator=g, dtype=torch.float64, requires_grad=True)
    r = responses.reshape(3, groups, unit.kernels, 6 // groups, *spatial)
    plain = (r * attention.unsqueeze(1).unsqueeze(3)).sum(dim=2).reshape(3, 6, *spatial)
    plain = plain + torch.einsum("bk...,ko->bo...", attention, unit.bias)
    mixed = unit.mix(responses, attention)
    torch.testing.assert_close(mixed, plain, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn(plain.shape, generator=g, dtype=torch.float64)
    for have, want in zip(torch.autograd.grad(mixed, [responses, attention], cotangent),
                          torch.autograd.grad(plain, [responses, attention], cotangent)):
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)


def test_local_drops_negligible_weights_so_no_gradient_is_subnormal():
    """Softmax weights under 2^-64 are 0: the output stays within float32 rounding of the exact mixture,
    and a small output gradient no longer turns into subnormal kernel gradients (slow on x86 CPUs)."""
    from dynlab.kernels.local_attention import NEGLIGIBLE_WEIGHT

    torch.manual_seed(0)
    unit = layers.build("local", 4, 6, 3, padding=1).train()
    with torch.no_grad():  # kernels 1-3 get logits 50, 70 and 120 below kernel 0's at every pixel
        unit.pixel_logits.weight.zero_()
        unit.pixel_logits.bias.copy_(torch.tensor([0.0, -50.0, -70.0, -120.0]))
    x = torch.rand(2, 4, 5, 5) + 0.5
    attention = unit.pixel_attention(x)
    exact = torch.softmax(unit.pixel_logits(x), dim=1)  # the representation adds the same to every pixel
    assert (exact[:, 1:] < 2.0 ** -64).all() and (exact[:, 1:] > 0).any()
    assert NEGLIGIBLE_WEIGHT == 2.0 ** -64 and (attention[:, 1:] == 0).all()
    torch.testing.assert_close(attention[:, 0], exact[:, 0], rtol=0, atol=0)

    kernels = torch.stack([F.conv2d(x, unit.weight[k], padding=1) for k in range(4)], dim=1)
    y = unit(x)
    torch.testing.assert_close(y, (exact.unsqueeze(2) * kernels).sum(1), rtol=1e-6, atol=1e-6)
    (y * 1e-20).sum().backward()  # weights e^-50 ~ 2e-22 times this gradient would be ~1e-42, subnormal
    grad = unit.weight.grad
    subnormal = (grad != 0) & (grad.abs() < torch.finfo(grad.dtype).tiny)
    assert not subnormal.any() and (grad[1:] == 0).all() and (grad[0] != 0).any()


def _plain_twin(unit):
    """The same unit (same weights) with its layer's own forward."""
    plain = copy.deepcopy(unit)
    plain.__class__ = next(c for c in type(unit).__mro__ if c.__module__.startswith("dynlab.layers."))
    return plain


FAST_CASES = [pytest.param(name, dim, stride, groups, bias, id=f"{name}-d{dim}-s{stride}-g{groups}-{'b' if bias else 'nob'}")
              for name in layers.names() for dim in (1, 2) for stride in (1, 2) for groups in (1, 2)
              for bias in (False, True) if not (bias and name.startswith("odconv"))]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,dim,stride,groups,bias", FAST_CASES)
def test_every_fast_unit_equals_its_layers_plain_forward(name, dim, stride, groups, bias, training):
    """What ``layers.build`` gives (the fast version where one exists) against the formula its layer's
    file writes: outputs, the attention it records, and the gradients of input and every parameter (float64)."""
    torch.manual_seed(3)
    fast = layers.build(name, 4, 6, 3, dim=dim, stride=stride, padding=1, groups=groups, bias=bias).double()
    if name == "hard":  # some gates closed, so that the fast inference path has channels to skip
        with torch.no_grad():
            fast.gate_logits.bias[::2] = -3.0
    plain = _plain_twin(fast)
    for unit in (fast, plain):
        unit.train(training)
        unit.temperature = 1.7
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, *((7, 7) if dim == 2 else (14,)), generator=g, dtype=torch.float64, requires_grad=True)
    outputs, grads = [], []
    for unit in (fast, plain):
        unit.record_attention = True
        out = unit(x)
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        wrt = [x, *[p for p in unit.parameters() if p.requires_grad]]
        grads.append(torch.autograd.grad(out, wrt, cotangent, allow_unused=True))
        outputs.append(out.detach())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-10, atol=1e-10)
    assert fast.recorded.keys() == plain.recorded.keys()
    for kind in fast.recorded:
        torch.testing.assert_close(fast.recorded[kind], plain.recorded[kind], rtol=1e-10, atol=1e-10)
    for got, want in zip(*grads):
        if want is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_the_switch_builds_plain_or_fast_units_and_the_stem_pool():
    from dynlab.models import resnet18

    assert kernels.enabled()
    for name in layers.names():
        cls = type(layers.build(name, 4, 4, 3, padding=1))
        assert issubclass(cls, layers.get(name).unit)
        assert (cls is not layers.get(name).unit) == (layers.get(name).unit in kernels.fast_units())
    with kernels.disabled():
        assert all(type(layers.build(name, 4, 4, 3, padding=1)) is layers.get(name).unit for name in layers.names())
        assert type(resnet18("base", 10, width=8).maxpool) is nn.MaxPool2d
    assert kernels.enabled() and type(resnet18("base", 10, width=8).maxpool) is kernels.stem_pool_class()
    torch.manual_seed(0)
    fast_model = resnet18("dyconv", 10, width=8).eval()
    with kernels.disabled():
        torch.manual_seed(0)
        plain_model = resnet18("dyconv", 10, width=8).eval()
    assert fast_model.state_dict().keys() == plain_model.state_dict().keys()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(fast_model(x), plain_model(x), rtol=1e-4, atol=1e-5)
