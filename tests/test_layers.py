"""Tests of the conv units (dynlab.layers): DESIGN.md section 3 and issue 2, section 5.

Every variant x dimension builds, runs forward and backward and is deterministic under a seed; the
properties DESIGN section 3 holds the units to, each its own test; and clear errors on bad input.
Shapes are kept tiny so that the whole file runs in seconds on a laptop CPU.
"""
from __future__ import annotations

import copy
import itertools
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from dynlab.layers import mixing
from dynlab.layers._unit import ConvUnit

CONV = {1: F.conv1d, 2: F.conv2d}
ALL = layers.names()
SOFTMAX_ROUTED = ["local", "dyconv", "odconv", "odconv4x"]
MIX_PATHS = ("grouped", "dense", "unfold", "unfold_dense")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is fastest, and avoids OpenMP spinning on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spatial_shape(dim: int, size: int = 6) -> tuple[int, ...]:
    return (size,) * dim if dim == 2 else (2 * size,)


def make_input(dim: int, batch: int = 2, channels: int = 4, size: int = 6, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *spatial_shape(dim, size), generator=g, dtype=dtype)


def out_size(n: int, k: int = 3, s: int = 1, p: int = 1, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def gap(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(2, x.dim())))


def expand(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * dim))


# ------------------------------------------------------------------------------------------------
# 1. Every variant x dim: build, forward, backward, shapes, determinism
# ------------------------------------------------------------------------------------------------


def test_names_are_the_eight_variants():
    assert ALL == ["base", "global", "local", "hard", "dyconv", "odconv", "odconv4x", "orient"]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ALL)
def test_build_forward_backward(name, dim, stride):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1, stride=stride)
    assert isinstance(unit, ConvUnit) and unit.dim == dim
    unit.train()
    x = make_input(dim).requires_grad_(True)
    y = unit(x)
    size = spatial_shape(dim)
    assert y.shape == (2, 6, *(out_size(n, s=stride) for n in size))
    assert y.dtype == x.dtype and torch.isfinite(y).all()
    loss = (y * torch.randn_like(y)).sum() + (y ** 2).mean()
    aux = layers.auxiliary_loss(unit)
    if name == "hard":
        assert torch.is_tensor(aux) and aux.requires_grad
        loss = loss + aux
    else:
        assert aux == 0.0
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in unit.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: parameter {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: parameter {pname} got an all-zero gradient"


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ["base", "local", "hard", "dyconv", "orient"])
def test_bias_gets_gradient(name, dim):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1, bias=True)
    unit(make_input(dim)).sum().backward()
    assert unit.bias is not None and unit.bias.grad is not None and unit.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ALL)
def test_eval_forward_and_batch_one(name, dim):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1).eval()
    with torch.no_grad():
        y1 = unit(make_input(dim, batch=1))
        y3 = unit(make_input(dim, batch=3))
    assert y1.shape[0] == 1 and y3.shape[0] == 3 and torch.isfinite(y3).all()


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name, dim):
    def run(seed):
        torch.manual_seed(seed)
        unit = layers.build(name, 4, 6, 3, dim=dim, padding=1, stride=2)
        post = layers.build_post_block(name, 6)
        x = torch.randn(2, 4, *spatial_shape(dim))
        y = unit(x)
        if post is not None:
            y = post(y)
        state = {**unit.state_dict(), **({f"post.{k}": v for k, v in post.state_dict().items()} if post else {})}
        return state, y.detach()

    s1, y1 = run(7)
    s2, y2 = run(7)
    s3, y3 = run(8)
    assert s1.keys() == s2.keys()
    for key in s1:
        assert torch.equal(s1[key], s2[key]), key
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)


@pytest.mark.parametrize("dim", [1, 2])
def test_global_post_block(dim):
    torch.manual_seed(0)
    post = layers.build_post_block("global", 32)
    assert isinstance(post, layers.SqueezeExcite)
    assert post.squeeze.out_features == 8  # hidden C/16, at least 8
    assert layers.build_post_block("global", 256).squeeze.out_features == 16
    x = make_input(dim, channels=32).requires_grad_(True)
    y = post(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None and torch.isfinite(p.grad).all() for p in post.parameters())
    # A is in (0, 1), one weight per channel and per image
    a = y.detach() / x.detach()
    assert torch.allclose(a, a[..., :1] if dim == 1 else a[..., :1, :1], atol=1e-5)
    for name in ALL:
        if name != "global":
            assert layers.build_post_block(name, 32) is None


def test_defaults_follow_design():
    torch.manual_seed(0)
    dy = layers.build("dyconv", 128, 8, 3, padding=1)
    assert dy.kernels == 4 and dy.attention_hidden.out_features == 32 and dy.routing == "softmax"
    assert layers.build("dyconv", 8, 8, 3, padding=1).attention_hidden.out_features == 16
    od = layers.build("odconv", 512, 8, 3, padding=1)
    assert od.kernels == 1 and od.attention.fc.out_features == 32 and od.attention.fc.bias is None
    assert layers.build("odconv4x", 64, 8, 3, padding=1).attention.fc.out_features == 16
    assert layers.build("odconv4x", 8, 8, 3, padding=1).kernels == 4
    local = layers.build("local", 8, 8, 3, padding=1)
    assert local.kernels == 4 and local.representation_size == 32
    assert layers.build("hard", 128, 8, 3, padding=1).gate_hidden.out_features == 32
    assert layers.build("orient", 4, 4, 3, padding=1).orientations == 4
    assert layers.build("orient", 4, 4, 3, dim=1, padding=1).orientations == 2
    for name in ALL:
        assert layers.build(name, 4, 4, 3, padding=1).temperature == 1.0


@pytest.mark.parametrize("dim", [1, 2])
def test_odconv_pointwise_has_no_spatial_head(dim):
    torch.manual_seed(0)
    unit = layers.build("odconv4x", 4, 6, 1, dim=dim).double().eval()
    assert unit.attention.spatial_fc is None and unit.attention.kernel_fc is not None
    x = make_input(dim, batch=3, dtype=torch.float64)
    outputs = []
    for path in ("auto", *MIX_PATHS):
        unit.path = path
        outputs.append(unit(x))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], rtol=1e-12, atol=1e-12)
    assert set(layers.collect_attention(unit, x)[""]) == {"channel", "filter", "kernel"}


# ------------------------------------------------------------------------------------------------
# 2. DESIGN section 3 properties
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("routing", ["softmax", "sigmoid"])
def test_dyconv_uniform_attention_identical_kernels_is_static_conv(dim, routing):
    torch.manual_seed(0)
    unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1, stride=2, routing=routing).double()
    w = torch.randn(unit.weight.shape[1:], dtype=torch.float64)
    with torch.no_grad():
        unit.weight.copy_(w.expand_as(unit.weight))
        unit.attention_logits.weight.zero_()
        unit.attention_logits.bias.zero_()
    x = make_input(dim, batch=3, dtype=torch.float64)
    # softmax: each attention is 1/K and they sum to 1; sigmoid (CondConv): each is 0.5
    scale = 1.0 if routing == "softmax" else 0.5 * unit.kernels
    expected = CONV[dim](x, scale * w, None, 2, 1)
    for path in ("auto", *MIX_PATHS):
        unit.path = path
        for mode in (True, False):
            unit.train(mode)
            torch.testing.assert_close(unit(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ["odconv", "odconv4x"])
def test_odconv_uniform_attention_identical_kernels_is_static_conv(name, dim):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1, stride=2).double()
    att = unit.attention
    w = torch.randn(unit.weight.shape[1:], dtype=torch.float64)
    with torch.no_grad():
        unit.weight.copy_(w.expand_as(unit.weight))
        for head in (att.channel_fc, att.filter_fc, att.spatial_fc, att.kernel_fc):
            if head is not None:
                head.weight.zero_()
        # sigmoid(+inf) = 1 exactly for the sigmoid heads
        for head in (att.channel_fc, att.filter_fc, att.spatial_fc):
            head.bias.fill_(math.inf)
        if att.kernel_fc is not None:
            att.kernel_fc.bias.zero_()  # softmax of equal logits: uniform
    x = make_input(dim, batch=3, dtype=torch.float64)
    expected = CONV[dim](x, w, None, 2, 1)
    for path in ("auto", *MIX_PATHS):
        unit.path = path
        for mode in (True, False):
            unit.train(mode)
            torch.testing.assert_close(unit(x), expected, rtol=1e-12, atol=1e-12)

    # finite biases: sigmoid gives a constant c on the channel, spatial and filter heads -> c^3 W
    with torch.no_grad():
        for head in (att.channel_fc, att.filter_fc, att.spatial_fc):
            head.bias.fill_(0.4)
    c = torch.sigmoid(torch.tensor(0.4, dtype=torch.float64))
    unit.eval()
    torch.testing.assert_close(unit(x), CONV[dim](x, c ** 3 * w, None, 2, 1), rtol=1e-12, atol=1e-12)


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


@pytest.mark.parametrize("dim,stride,channels,dilation,batch,count,has_spatial", _MIX_CASES)
def test_mixing_paths_equal_per_sample_loop(dim, stride, channels, dilation, batch, count, has_spatial):
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
    for path in ("auto", *MIX_PATHS):
        out = mixing.mix_kernels_per_sample(unit, x, kernels, attention, spatial, path)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10, msg=lambda m: f"path {path}: {m}")
        grads = torch.autograd.grad(out, inputs, cotangent)
        for what, got, want in zip(("input", "kernels", "attention", "spatial"), grads, expected_grads):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10,
                                       msg=lambda m: f"path {path}, gradient w.r.t. {what}: {m}")

    if count == 1:  # no kernel attention at all (odconv with K = 1)
        inputs = [x, kernels] + ([spatial] if has_spatial else [])
        expected = per_sample_reference(unit, x, kernels, None, spatial)
        expected_grads = torch.autograd.grad(expected, inputs, cotangent)
        for path in ("auto", *MIX_PATHS):
            out = mixing.mix_kernels_per_sample(unit, x, kernels, None, spatial, path)
            torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
            for got, want in zip(torch.autograd.grad(out, inputs, cotangent), expected_grads):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_mixing_rejects_bad_path_and_missing_attention():
    unit = ConvUnit(4, 4, 3, padding=1)
    x, kernels = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 4, 3, 3)
    with pytest.raises(ValueError, match="path must be one of"):
        mixing.mix_kernels_per_sample(unit, x, kernels, torch.rand(2, 2), path="fast")
    with pytest.raises(ValueError, match="kernel attention"):
        mixing.mix_kernels_per_sample(unit, x, kernels, None)


# -- each unit in eval mode against a per-sample loop written from the DESIGN math ---------------

_UNIT_CASES = [
    pytest.param(dim, stride, groups, id=f"d{dim}-s{stride}-g{groups}")
    for dim, stride, groups in itertools.product((1, 2), (1, 2), (1, 2))
]


def _conv1(x_b, w, unit):
    return CONV[unit.dim](x_b, w, None, unit.stride, unit.padding, unit.dilation, unit.groups)


@pytest.mark.parametrize("dim,stride,groups", _UNIT_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_dyconv_unit_matches_per_sample_loop(dim, stride, groups, bias):
    torch.manual_seed(1)
    unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1, stride=stride, groups=groups, bias=bias)
    unit = unit.double().eval()
    unit.temperature = 2.5
    if bias:
        nn.init.normal_(unit.bias)
    x = make_input(dim, batch=3, dtype=torch.float64)
    outs = []
    for b in range(3):
        xb = x[b:b + 1]
        logits = unit.attention_logits(torch.relu(unit.attention_hidden(gap(xb))))[0]
        pi = torch.softmax(logits / 2.5, dim=0)
        w = sum(pi[k] * unit.weight[k] for k in range(unit.kernels))
        y = _conv1(xb, w, unit)
        if bias:
            y = y + expand((pi @ unit.bias)[None], dim)
        outs.append(y)
    expected = torch.cat(outs)
    for path in ("auto", *MIX_PATHS):
        unit.path = path
        torch.testing.assert_close(unit(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim,stride,groups", _UNIT_CASES + [pytest.param(2, 1, 4, id="d2-s1-depthwise"),
                                                             pytest.param(1, 2, 4, id="d1-s2-depthwise")])
@pytest.mark.parametrize("name", ["odconv", "odconv4x"])
def test_odconv_unit_matches_per_sample_loop(name, dim, stride, groups):
    torch.manual_seed(1)
    c_out = 4 if groups == 4 else 6
    unit = layers.build(name, 4, c_out, 3, dim=dim, padding=1, stride=stride, groups=groups).double()
    att = unit.attention
    assert (att.filter_fc is None) == (groups == 4)  # no output-channel head for a depthwise conv
    assert (att.kernel_fc is None) == (unit.kernels == 1)  # no kernel head when K = 1
    with torch.no_grad():  # non-trivial BN statistics
        att.bn.running_mean.normal_()
        att.bn.running_var.uniform_(0.5, 2.0)
        nn.init.normal_(att.bn.weight)
        nn.init.normal_(att.bn.bias)
    unit.eval()
    t = 1.7
    unit.temperature = t
    x = make_input(dim, batch=3, dtype=torch.float64)
    outs = []
    for b in range(3):
        xb = x[b:b + 1]
        h = torch.relu(att.bn(att.fc(gap(xb))))[0]
        a_channel = torch.sigmoid(att.channel_fc(h) / t)
        a_spatial = torch.sigmoid(att.spatial_fc(h) / t).reshape(unit.kernel_size)
        if unit.kernels > 1:
            a_kernel = torch.softmax(att.kernel_fc(h) / t, dim=0)
        else:
            a_kernel = torch.ones(1, dtype=torch.float64)
        w = sum(a_kernel[k] * a_spatial * unit.weight[k] for k in range(unit.kernels))
        y = _conv1(xb * expand(a_channel[None], dim), w, unit)
        if att.filter_fc is not None:
            y = y * expand(torch.sigmoid(att.filter_fc(h) / t)[None], dim)
        outs.append(y)
    expected = torch.cat(outs)
    for path in ("auto", *MIX_PATHS):
        unit.path = path
        torch.testing.assert_close(unit(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim,stride,groups", _UNIT_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_local_unit_matches_per_sample_loop(dim, stride, groups, bias):
    torch.manual_seed(1)
    unit = layers.build("local", 4, 6, 3, dim=dim, padding=1, stride=stride, groups=groups, bias=bias)
    unit = unit.double().eval()
    if bias:
        nn.init.normal_(unit.bias)
    t = 3.0
    unit.temperature = t
    x = make_input(dim, batch=3, dtype=torch.float64)
    outs = []
    for b in range(3):
        xb = x[b:b + 1]
        r = torch.tanh(unit.update_representation(torch.cat([gap(xb)[0], torch.zeros(32, dtype=x.dtype)])))
        logits = unit.pixel_logits(xb)[0] + expand(unit.representation_logits(r), dim)
        a = torch.softmax(logits / t, dim=0)  # (K, *S_out)
        y = 0
        for k in range(unit.kernels):
            response = _conv1(xb, unit.weight[k], unit)[0]
            if bias:
                response = response + expand(unit.bias[k], dim)
            y = y + a[k:k + 1] * response
        outs.append(y[None])
    torch.testing.assert_close(unit(x), torch.cat(outs), rtol=1e-10, atol=1e-10)


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
    from dynlab.layers.local_attention import NEGLIGIBLE_WEIGHT

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


@pytest.mark.parametrize("dim,stride,groups", _UNIT_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_orient_unit_matches_per_sample_loop(dim, stride, groups, bias):
    torch.manual_seed(1)
    unit = layers.build("orient", 4, 6, 3, dim=dim, padding=1, stride=stride, groups=groups, bias=bias)
    unit = unit.double().eval()
    if bias:
        nn.init.normal_(unit.bias)
    x = make_input(dim, batch=3, dtype=torch.float64)
    if dim == 2:
        rotated = [torch.rot90(unit.weight, r, dims=(2, 3)) for r in range(4)]
    else:
        rotated = [unit.weight, unit.weight.flip(2)]
    outs = []
    for b in range(3):
        responses = torch.stack([_conv1(x[b:b + 1], w, unit) for w in rotated])
        y = responses.max(dim=0).values
        if bias:
            y = y + expand(unit.bias[None], dim)
        outs.append(y)
    torch.testing.assert_close(unit(x), torch.cat(outs), rtol=1e-10, atol=1e-10)


# -- hard -------------------------------------------------------------------------------------


def _open_all_gates(unit):
    with torch.no_grad():
        unit.gate_logits.weight.zero_()
        unit.gate_logits.bias.fill_(20.0)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_hard_all_open_equals_base(dim, bias):
    torch.manual_seed(0)
    hard = layers.build("hard", 4, 6, 3, dim=dim, padding=1, stride=2, bias=bias).double()
    base = layers.build("base", 4, 6, 3, dim=dim, padding=1, stride=2, bias=bias).double()
    with torch.no_grad():
        base.weight.copy_(hard.weight)
        if bias:
            nn.init.normal_(hard.bias)
            base.bias.copy_(hard.bias)
    _open_all_gates(hard)
    x = make_input(dim, batch=3, dtype=torch.float64)
    for mode in (True, False):
        hard.train(mode)
        base.train(mode)
        assert torch.equal(hard(x), base(x))
    assert hard.last_open_rate == 1.0


def test_hard_gates_start_open():
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 8, 3, padding=1)
    assert torch.all(unit.gate_logits.bias == 3.0)
    assert unit.gate_hidden.out_features == 16  # max(C_in/4, 16)


def _half_open_hard(dim, seed=0, bias=False):
    torch.manual_seed(seed)
    unit = layers.build("hard", 4, 8, 3, dim=dim, padding=1, bias=bias).double()
    with torch.no_grad():
        nn.init.normal_(unit.gate_logits.weight, std=2.0)
        unit.gate_logits.bias.copy_(torch.linspace(-4, 4, 8))
        if bias:
            nn.init.normal_(unit.bias)
    return unit


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_hard_inference_skips_closed_channels_exactly(dim, bias, batch):
    unit = _half_open_hard(dim, bias=bias)
    x = make_input(dim, batch=batch, dtype=torch.float64)
    gates = (unit.gate_probabilities(x) > 0.5).to(x.dtype).detach()
    assert 0 < gates.sum() < gates.numel(), "the test needs some gates open and some closed"
    unit.eval()
    y_eval = unit(x).detach()
    # closed channels are exactly zero
    closed = gates == 0
    assert torch.all(y_eval[closed] == 0)
    # equals the full convolution times the hard gates
    full = CONV[dim](x, unit.weight, unit.bias, 1, 1) * expand(gates, dim)
    torch.testing.assert_close(y_eval, full, rtol=1e-12, atol=1e-12)
    # the executed path convolves only the open channels (for batch 1 exactly those)
    calls = []
    original = unit.conv

    def spy(inp, weight, bias=None, groups=None):
        calls.append(weight.shape[0])
        return original(inp, weight, bias, groups)

    unit.conv = spy
    try:
        assert torch.equal(unit(x), y_eval)
    finally:
        del unit.conv
    assert calls == [int((gates.amax(0) > 0).sum())]
    if batch == 1:
        assert calls == [int(gates.sum())]
    # training mode gives the same values: the forward uses hard 0/1 gates
    unit.train()
    y_train = unit(x)
    assert torch.all(y_train.detach()[closed] == 0)
    # (a convolution over a subset of the channels may round differently from the full one)
    torch.testing.assert_close(y_train.detach(), y_eval, rtol=1e-12, atol=1e-12)
    assert unit.last_open_rate == pytest.approx(float(gates.mean()))


@pytest.mark.parametrize("dim", [1, 2])
def test_hard_inference_with_every_gate_closed(dim):
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 6, 3, dim=dim, padding=1, stride=2).eval()
    with torch.no_grad():
        unit.gate_logits.weight.zero_()
        unit.gate_logits.bias.fill_(-20.0)
    x = make_input(dim, batch=2)
    y = unit(x)
    assert y.shape == (2, 6, *(out_size(n, s=2) for n in spatial_shape(dim)))
    assert torch.all(y == 0)
    unit.train()
    assert torch.equal(unit(x).detach(), y)


def test_hard_training_gate_values_are_exactly_zero_or_one():
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 64, 3, padding=1)
    with torch.no_grad():
        nn.init.normal_(unit.gate_logits.weight)
        nn.init.normal_(unit.gate_logits.bias, std=2.0)
    unit.train()
    unit.record_attention = True
    x = make_input(2, batch=8)
    y = unit(x)
    gates = unit.recorded["gates"]
    unit.record_attention = False
    conv = F.conv2d(x, unit.weight, None, 1, 1)
    assert torch.equal(y.detach(), conv * gates[:, :, None, None])


@pytest.mark.parametrize("dim", [1, 2])
def test_hard_straight_through_gradient_reaches_gates(dim):
    unit = _half_open_hard(dim)
    unit.train()
    x = make_input(dim, batch=3, dtype=torch.float64)
    y = unit(x)
    y.pow(2).sum().backward()  # the task loss only, no budget term
    for layer in (unit.gate_hidden, unit.gate_logits):
        for p in layer.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # d loss / d soft gate = sum over the channel of conv * dL/dy: check the gate logits' bias gradient
    unit.zero_grad()
    h = torch.relu(unit.gate_hidden(gap(x)))
    z = unit.gate_logits(h)
    soft = torch.sigmoid(z)
    conv = CONV[dim](x, unit.weight, None, 1, 1)
    hard = (soft > 0.5).to(x.dtype)
    dl_dgate = (2 * conv * hard.reshape(*hard.shape, *([1] * dim)) * conv).sum(tuple(range(2, 2 + dim)))
    expected_bias_grad = (dl_dgate * soft * (1 - soft)).sum(0)
    unit(x).pow(2).sum().backward()
    torch.testing.assert_close(unit.gate_logits.bias.grad, expected_bias_grad.detach(), rtol=1e-10, atol=1e-10)


def test_hard_auxiliary_loss_is_budget_term_averaged_over_units():
    torch.manual_seed(0)
    model = nn.Sequential(
        layers.build("hard", 4, 8, 3, padding=1, budget=0.25),
        nn.ReLU(),
        layers.build("hard", 8, 6, 3, padding=1, budget=0.5),
        layers.build("base", 6, 6, 3, padding=1),
    ).double()
    with torch.no_grad():
        for unit in (model[0], model[2]):
            nn.init.normal_(unit.gate_logits.weight, std=2.0)
            unit.gate_logits.bias.uniform_(-2, 2)
    x = make_input(2, batch=3, dtype=torch.float64)
    model.train()
    model(x)
    rates = [model[0].last_open_rate, model[2].last_open_rate]
    expected = ((rates[0] - 0.25) ** 2 + (rates[1] - 0.5) ** 2) / 2
    loss = layers.auxiliary_loss(model)
    assert torch.is_tensor(loss) and loss.requires_grad
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    loss.backward()
    assert model[0].gate_logits.bias.grad is not None
    model.eval()
    model(x)
    assert layers.auxiliary_loss(model) == 0.0
    assert layers.auxiliary_loss(nn.Sequential(layers.build("dyconv", 4, 4, 3, padding=1))) == 0.0


def test_hard_budget_weight_and_default_budget():
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 8, 3, padding=1, budget_weight=3.0)
    assert unit.budget == 0.5
    unit.train()
    unit(make_input(2))
    assert float(layers.auxiliary_loss(unit).detach()) == pytest.approx(3.0 * (unit.last_open_rate - 0.5) ** 2)


# -- global, orient, local -------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
def test_global_with_attention_one_is_identity(dim):
    torch.manual_seed(0)
    post = layers.build_post_block("global", 16).double()
    with torch.no_grad():
        post.excite.weight.zero_()
        post.excite.bias.fill_(math.inf)
    x = make_input(dim, channels=16, dtype=torch.float64)
    for mode in (True, False):
        post.train(mode)
        assert torch.equal(post(x), x)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_orient_commutes_with_rotation_2d(groups, bias):
    torch.manual_seed(0)
    unit = layers.build("orient", 4, 6, 3, dim=2, padding=1, groups=groups, bias=bias).double()
    if bias:
        nn.init.normal_(unit.bias)
    x = make_input(2, batch=2, size=7, dtype=torch.float64)
    y = unit(x)
    for r in (1, 2, 3):
        torch.testing.assert_close(unit(torch.rot90(x, r, dims=(2, 3))), torch.rot90(y, r, dims=(2, 3)),
                                   rtol=1e-12, atol=1e-12)
    # ... and a plain convolution does not (so the check has teeth)
    plain = F.conv2d(x, unit.weight, None, 1, 1, 1, groups)
    assert not torch.allclose(F.conv2d(torch.rot90(x, 1, dims=(2, 3)), unit.weight, None, 1, 1, 1, groups),
                              torch.rot90(plain, 1, dims=(2, 3)))


@pytest.mark.parametrize("groups", [1, 2])
def test_orient_commutes_with_time_reversal_1d(groups):
    torch.manual_seed(0)
    unit = layers.build("orient", 4, 6, 3, dim=1, padding=1, groups=groups).double()
    x = make_input(1, batch=2, dtype=torch.float64)
    torch.testing.assert_close(unit(x.flip(-1)), unit(x).flip(-1), rtol=1e-12, atol=1e-12)


def _local_model(dim=2):
    torch.manual_seed(0)
    model = nn.Sequential(
        layers.build("local", 4, 6, 3, dim=dim, padding=1),
        nn.ReLU(),
        layers.build("local", 6, 5, 3, dim=dim, padding=1, stride=2),
    ).double()
    return layers.bind(model)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("training", [True, False])
def test_local_representation_reset_every_forward(dim, training):
    model = _local_model(dim).train(training)
    a = make_input(dim, batch=3, seed=1, dtype=torch.float64)
    b = make_input(dim, batch=3, seed=2, dtype=torch.float64)
    y1 = model(a)
    y2 = model(a)
    assert torch.equal(y1, y2)
    y_b_after_a = model(b)
    fresh = _local_model(dim).train(training)
    assert torch.equal(y_b_after_a, fresh(b))
    # one shared representation, and units are bound to it
    assert model[0].shared is model[2].shared is not None


def test_local_second_unit_depends_on_first_units_v():
    """With the first unit's output held fixed, the second unit's output moves with the first unit's V."""
    model = _local_model(2)
    x = make_input(2, batch=2, dtype=torch.float64)
    first, second = model[0], model[2]
    outputs = {}

    def capture(module, args, out):
        outputs[id(module)] = out

    hook = second.register_forward_hook(capture)
    try:
        with torch.no_grad():
            h = model[1](first(x)).clone()
            model(x)
            y_before = outputs[id(second)].clone()
            first.update_representation.weight.mul_(-1.0)  # new V, same conv kernels
            # the first unit's output changes too (r feeds its own logits), so feed the second unit the
            # old h through a stand-in: replace the first unit's forward result by h
            handle = first.register_forward_hook(lambda m, a, o: h)
            try:
                model(x)
            finally:
                handle.remove()
            y_after = outputs[id(second)]
    finally:
        hook.remove()
    assert not torch.allclose(y_before, y_after)


def test_bound_local_model_copies_and_pickles():
    model = _local_model(2)
    x = make_input(2, batch=2, dtype=torch.float64)
    y = model(x)
    clone = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    for other in (clone, restored):
        assert other[0].shared is other[2].shared is not model[0].shared
        assert torch.equal(other(x), y)
    assert torch.equal(model(x), y)


@pytest.mark.parametrize("dim", [1, 2])
def test_local_needs_same_padding_and_has_pixel_attention_shape(dim):
    torch.manual_seed(0)
    unit = layers.build("local", 4, 6, 3, dim=dim, padding=2, dilation=2, stride=2)
    y = unit(make_input(dim, size=7))
    assert y.shape[2:] == tuple(out_size(n, s=2, p=2, d=2) for n in spatial_shape(dim, 7))


# -- odconv batch 1 -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["odconv", "odconv4x"])
def test_odconv_training_batch_one_raises_clear_error(name):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, padding=1).train()
    x = make_input(2, batch=1)
    with pytest.raises(ValueError, match=r"(?i)batch.*(2|two)|at least 2"):
        unit(x)
    unit.eval()
    y = unit(x)
    assert y.shape == (1, 6, 6, 6) and torch.isfinite(y).all()
    unit.train()
    assert unit(make_input(2, batch=2)).shape[0] == 2


@pytest.mark.parametrize("name", ["odconv", "odconv4x"])
def test_odconv_without_attention_batchnorm(name):
    """attention_norm='none': no BatchNorm in the trunk, so a sample's output no longer depends on its batch."""
    torch.manual_seed(0)
    x = make_input(2, batch=3, dtype=torch.float64)
    reference = layers.build(name, 4, 6, 3, padding=1).double().train()
    assert layers.needs_precise_batchnorm(reference)
    assert not torch.allclose(reference(x)[:2], reference(x[:2]))  # the reference's does depend on it
    unit = layers.build(name, 4, 6, 3, padding=1, attention_norm="none").double().train()
    assert unit.attention.bn is None and unit.attention.fc.bias is not None
    assert not layers.needs_precise_batchnorm(unit)
    alone = torch.cat([unit(x[i:i + 1]) for i in range(3)])  # batch 1 trains too
    torch.testing.assert_close(unit(x), alone, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unit.eval()(x), alone, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="attention_norm must be one of batch, none"):
        layers.build(name, 4, 4, 3, padding=1, attention_norm="layer")


# -- temperature ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOFTMAX_ROUTED)
def test_set_temperature_changes_units_and_output(name):
    torch.manual_seed(0)
    model = nn.Sequential(layers.build(name, 4, 6, 3, padding=1), nn.ReLU(),
                          layers.build(name, 6, 6, 3, padding=1)).eval()
    layers.bind(model)
    assert layers.uses_temperature(model)
    x = make_input(2, batch=2)
    with torch.no_grad():
        y1 = model(x)
        assert layers.set_temperature(model, 30.0) == 2
        assert model[0].temperature == model[2].temperature == 30.0
        y30 = model(x)
        layers.set_temperature(model, 1.0)
        assert torch.equal(model(x), y1)
    assert not torch.allclose(y1, y30)


def test_set_temperature_ignores_static_units_and_rejects_non_positive():
    model = nn.Sequential(*(layers.build(n, 4, 4, 3, padding=1) for n in ("base", "hard", "orient")))
    assert not layers.uses_temperature(model)
    assert layers.set_temperature(model, 5.0) == 0
    with pytest.raises(ValueError, match="positive"):
        layers.set_temperature(model, 0.0)


@pytest.mark.parametrize("dim", [1, 2])
def test_condconv_sigmoid_routing_ignores_temperature(dim):
    torch.manual_seed(0)
    unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1, routing="sigmoid").eval()
    x = make_input(dim)
    with torch.no_grad():
        y = unit(x)
        assert not layers.uses_temperature(unit)
        assert layers.set_temperature(unit, 30.0) == 0
        assert torch.equal(unit(x), y)
        unit.temperature = 7.0  # even if set by hand
        assert torch.equal(unit(x), y)
    softmax_unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1)
    assert layers.uses_temperature(softmax_unit)


def test_temperature_schedule_short_run():
    schedule = layers.TemperatureSchedule.for_run(epochs=3, steps_per_epoch=10)
    assert schedule(0) == 30.0
    assert schedule(5) == pytest.approx(15.5)
    values = [schedule(s) for s in range(30)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone
    assert schedule(9) > 1.0
    assert schedule(10) == 1.0
    assert all(v == 1.0 for v in values[10:])
    assert schedule(10_000) == 1.0


def test_temperature_schedule_long_run_anneals_over_ten_epochs():
    schedule = layers.TemperatureSchedule.for_run(epochs=60, steps_per_epoch=10)
    assert schedule(0) == 30.0
    assert schedule(50) == pytest.approx(15.5)
    assert schedule(99) > 1.0
    assert schedule(100) == 1.0 and schedule(599) == 1.0
    assert layers.TemperatureSchedule.for_run(epochs=30, steps_per_epoch=7)(70) == 1.0
    assert layers.TemperatureSchedule(0)(0) == 1.0
    with pytest.raises(ValueError):
        layers.TemperatureSchedule(-1)


# -- collect_attention -------------------------------------------------------------------------


def _expected_kinds(name, batch, c_in, c_out, s_out, dim):
    k = 3 ** dim
    return {
        "base": {},
        "global": {"se": (batch, c_out)},
        "local": {"pixel": (batch, 4, *s_out)},
        "hard": {"gates": (batch, c_out)},
        "dyconv": {"kernel": (batch, 4)},
        "odconv": {"channel": (batch, c_in), "filter": (batch, c_out), "spatial": (batch, k)},
        "odconv4x": {"channel": (batch, c_in), "filter": (batch, c_out), "spatial": (batch, k), "kernel": (batch, 4)},
        "orient": {"orientation": (batch, c_out, *s_out)},
    }[name]


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", ALL)
def test_collect_attention_kinds_and_shapes(name, dim, training):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1, stride=2)
    modules = [unit, nn.BatchNorm1d(6) if dim == 1 else nn.BatchNorm2d(6)]
    post = layers.build_post_block(name, 6)
    if post is not None:
        modules.append(post)
    model = layers.bind(nn.Sequential(*modules)).train(training)
    batch = 2
    x = make_input(dim, batch=batch)
    bn_stats = modules[1].running_mean.clone()
    result = layers.collect_attention(model, x)
    s_out = tuple(out_size(n, s=2) for n in spatial_shape(dim))
    expected = _expected_kinds(name, batch, 4, 6, s_out, dim)
    if not expected:
        assert result == {}
    else:
        owner = "2" if name == "global" else "0"
        assert set(result) == {owner}
        assert {kind: tuple(t.shape) for kind, t in result[owner].items()} == expected
        for t in result[owner].values():
            assert t.device.type == "cpu" and not t.requires_grad and t.grad_fn is None
    # the model is left as it was: mode, recording off, nothing kept, no BN update (eval forward)
    assert all(m.training == training for m in model.modules())
    assert all(not m.record_attention and m.recorded == {}
               for m in model.modules() if isinstance(m, layers.AttentionRecorder))
    assert torch.equal(modules[1].running_mean, bn_stats)


def test_collect_attention_values_are_the_attention():
    torch.manual_seed(0)
    unit = layers.build("dyconv", 4, 6, 3, padding=1)
    x = make_input(2, batch=3)
    got = layers.collect_attention(unit, x)[""]["kernel"]
    with torch.no_grad():
        expected = unit.kernel_attention(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), torch.ones(3))

    orient = layers.build("orient", 4, 6, 3, padding=1)
    winners = layers.collect_attention(orient, x)[""]["orientation"]
    assert winners.dtype == torch.int64 and int(winners.min()) >= 0 and int(winners.max()) <= 3

    hard = _half_open_hard(2)
    gates = layers.collect_attention(hard, x.double())[""]["gates"]
    assert set(gates.unique().tolist()) <= {0.0, 1.0}


def test_collect_attention_restores_mixed_modes():
    """A model in training mode with a frozen (eval) submodule keeps each module's own mode."""
    torch.manual_seed(0)
    model = nn.Sequential(layers.build("dyconv", 4, 6, 3, padding=1), nn.BatchNorm2d(6),
                          layers.build("hard", 6, 6, 3, padding=1))
    model.train()
    model[1].eval()
    layers.collect_attention(model, make_input(2))
    assert model.training and model[0].training and model[2].training
    assert not model[1].training


def test_collect_attention_restores_state_after_an_error():
    model = nn.Sequential(layers.build("dyconv", 4, 6, 3, padding=1)).train()
    with pytest.raises(ValueError):
        layers.collect_attention(model, torch.randn(2, 5, 6, 6))
    assert model.training and model[0].training and not model[0].record_attention


# ------------------------------------------------------------------------------------------------
# 3. Bad input: clear errors
# ------------------------------------------------------------------------------------------------


def test_unknown_variant_lists_valid_names():
    for call in (lambda: layers.build("condconv", 4, 4, 3), lambda: layers.build_post_block("se", 4),
                 lambda: layers.get("odconv8x")):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "unknown variant" in message
        for name in ALL:
            assert name in message


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_is_refused(name):
    with pytest.raises(ValueError, match=r"unknown option.*temprature") as info:
        layers.build(name, 4, 4, 3, padding=1, temprature=2.0)
    assert "valid options" in str(info.value)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"kernels.*routing|routing.*kernels"):
        layers.build("dyconv", 4, 4, 3, padding=1, route="softmax")
    with pytest.raises(ValueError, match="budget"):
        layers.build("hard", 4, 4, 3, padding=1, rho=0.5)
    with pytest.raises(ValueError, match="build_post_block"):
        layers.build("global", 4, 4, 3, padding=1, reduction=8)
    with pytest.raises(ValueError, match="unknown option"):
        layers.build_post_block("global", 16, kernels=2)
    assert layers.build_post_block("global", 64, reduction=4).squeeze.out_features == 16
    with pytest.raises(ValueError, match="routing"):
        layers.build("dyconv", 4, 4, 3, padding=1, routing="max")


@pytest.mark.parametrize("dim", [0, 3, "2"])
@pytest.mark.parametrize("name", ALL)
def test_wrong_dim(name, dim):
    with pytest.raises(ValueError, match="dim must be 1"):
        layers.build(name, 4, 4, 3, dim=dim, padding=1)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ALL)
def test_wrong_input_rank_and_channels(name, dim):
    torch.manual_seed(0)
    unit = layers.build(name, 4, 6, 3, dim=dim, padding=1).eval()
    good = make_input(dim)
    wrong_rank = [good[0], good.unsqueeze(-1)]
    for x in wrong_rank:
        with pytest.raises(ValueError, match=r"expects a batched input of shape"):
            unit(x)
    with pytest.raises(ValueError, match=r"expects 4 input channels, got 5"):
        unit(torch.randn(2, 5, *good.shape[2:]))


def test_global_post_block_wrong_input():
    post = layers.build_post_block("global", 8)
    with pytest.raises(ValueError, match="expects"):
        post(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="expects"):
        post(torch.randn(2, 8))


def test_orient_needs_square_kernels():
    with pytest.raises(ValueError, match="square"):
        layers.build("orient", 4, 4, (3, 5), padding=(1, 2))
    layers.build("orient", 4, 4, 5, dim=1, padding=2)  # any length in 1D


@pytest.mark.parametrize("dim", [1, 2])
def test_local_needs_same_padding(dim):
    with pytest.raises(ValueError, match="same"):
        layers.build("local", 4, 4, 3, dim=dim, padding=0)
    with pytest.raises(ValueError, match="same"):
        layers.build("local", 4, 4, 3, dim=dim, padding=1, dilation=2)


def test_odconv_refuses_bias():
    for name in ("odconv", "odconv4x"):
        with pytest.raises(ValueError, match="bias"):
            layers.build(name, 4, 4, 3, padding=1, bias=True)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.build("dyconv", 4, 6, 3, padding=1, groups=4)
    with pytest.raises(ValueError, match="kernel_size"):
        layers.build("base", 4, 4, (3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="padding"):
        layers.build("base", 4, 4, 3, padding="same")
    with pytest.raises(ValueError, match="in_channels"):
        layers.build("base", 0, 4, 3)
    with pytest.raises(ValueError, match="budget"):
        layers.build("hard", 4, 4, 3, budget=1.5)
    with pytest.raises(ValueError, match="kernels"):
        layers.build("dyconv", 4, 4, 3, kernels=0)
