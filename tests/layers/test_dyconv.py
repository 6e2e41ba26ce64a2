"""``dyconv``: K kernels mixed per image (and CondConv's sigmoid routing)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dynlab import layers
from layer_cases import CONV, UNIT_CASES, conv1, every_version, expand, gap, make_input


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
    for _, version in every_version(unit):
        for mode in (True, False):
            version.train(mode)
            torch.testing.assert_close(version(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim,stride,groups", UNIT_CASES)
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
        y = conv1(xb, w, unit)
        if bias:
            y = y + expand((pi @ unit.bias)[None], dim)
        outs.append(y)
    expected = torch.cat(outs)
    for _, version in every_version(unit):
        torch.testing.assert_close(version(x), expected, rtol=1e-10, atol=1e-10)


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


@pytest.mark.parametrize("dim", [1, 2])
def test_condconv_routing_is_one_fully_connected_layer(dim):
    """CondConv (Yang et al.; timm's CondConv2d): r = sigmoid(GAP(x) R + b), W_b = sum_k r_bk W_k."""
    torch.manual_seed(0)
    unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1, routing="sigmoid").double().eval()
    assert unit.attention_hidden is None and unit.attention_logits.in_features == 4
    x = make_input(dim, batch=3, dtype=torch.float64)
    r = torch.sigmoid(gap(x) @ unit.attention_logits.weight.t() + unit.attention_logits.bias)
    expected = torch.cat([conv1(x[b:b + 1], sum(r[b, k] * unit.weight[k] for k in range(4)), unit) for b in range(3)])
    torch.testing.assert_close(unit(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim", [1, 2])
def test_dyconv_attention_norm_batch_normalises_the_hidden_layer(dim):
    """GAP -> FC (no bias) -> BN -> ReLU -> FC -> softmax; in eval mode BN uses its running statistics."""
    torch.manual_seed(2)
    unit = layers.build("dyconv", 4, 6, 3, dim=dim, padding=1, attention_norm="batch").double()
    assert unit.attention_hidden.bias is None and unit.batchnorm_in_attention
    assert layers.needs_precise_batchnorm(unit)
    assert not layers.needs_precise_batchnorm(layers.build("dyconv", 4, 6, 3, dim=dim, padding=1))
    x = make_input(dim, batch=5, dtype=torch.float64)
    unit.train()
    hidden = unit.attention_hidden(gap(x))
    normalised = (hidden - hidden.mean(0)) / torch.sqrt(hidden.var(0, unbiased=False) + unit.attention_norm.eps)
    expected = torch.softmax(unit.attention_logits(torch.relu(normalised)), dim=1)
    torch.testing.assert_close(unit.kernel_attention(x), expected, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        unit.attention_norm.running_mean.normal_()
        unit.attention_norm.running_var.uniform_(0.5, 2.0)
    unit.eval()
    norm = unit.attention_norm
    normalised = (unit.attention_hidden(gap(x)) - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    expected = torch.softmax(unit.attention_logits(torch.relu(normalised)), dim=1)
    torch.testing.assert_close(unit.kernel_attention(x), expected, rtol=1e-10, atol=1e-10)
    # eval mode: each sample's attention is its own, whatever else is in the batch
    torch.testing.assert_close(unit.kernel_attention(x[:1]), expected[:1], rtol=1e-10, atol=1e-10)


def test_dyconv_attention_norm_errors_say_what_to_do():
    with pytest.raises(ValueError, match="attention_norm must be one of none, batch"):
        layers.build("dyconv", 4, 6, 3, padding=1, attention_norm="layer")
    with pytest.raises(ValueError, match="needs routing='softmax'"):
        layers.build("dyconv", 4, 6, 3, padding=1, routing="sigmoid", attention_norm="batch")
    unit = layers.build("dyconv", 4, 6, 3, padding=1, attention_norm="batch").train()
    with pytest.raises(ValueError, match="at least 2 samples"):
        unit(torch.randn(1, 4, 8, 8))
    unit.eval()
    assert unit(torch.randn(1, 4, 8, 8)).shape == (1, 6, 8, 8)
