"""``hard``: on/off gates with a straight-through gradient and a budget; closed channels cost nothing."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from layer_cases import CONV, expand, gap, half_open_hard, make_input, out_size, spatial_shape


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


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_hard_inference_skips_closed_channels_exactly(dim, bias, batch, monkeypatch):
    from dynlab.kernels.hard_attention import FastGatedConv

    monkeypatch.setattr(FastGatedConv, "skip_at_least", 0)  # so small a unit skips only when told to
    unit = half_open_hard(dim, bias=bias)
    x = make_input(dim, batch=batch, dtype=torch.float64)
    gates = (unit.gate_probabilities(x) > 0.5).to(x.dtype).detach()
    assert 0 < gates.sum() < gates.numel(), "the test needs some gates open and some closed"
    unit.eval()
    with torch.no_grad():  # the executed path: without gradients
        y_eval = unit(x)
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
        with torch.no_grad():
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
    unit = half_open_hard(dim)
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


def _closed_channel_gradient_ratio(gate_after_norm: bool) -> float:
    """One unit of 8 channels and the BatchNorm a block puts after it; channel 0's gate is closed for the
    whole batch. Returns |d loss / d bias of channel 0's gate| over the open gates' mean."""
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 8, 3, padding=1, gate_bias=1.0, gate_after_norm=gate_after_norm).double()
    with torch.no_grad():
        unit.gate_logits.bias[0] = -0.2  # sigmoid < 0.5 for every sample: closed, but near its threshold
        unit.gate_logits.weight.zero_()
    block_norm = layers.norm_after(unit, 8, 2).double()
    x = make_input(2, batch=16, dtype=torch.float64)
    target = torch.randn(16, 8, *spatial_shape(2), dtype=torch.float64)
    unit.train(), block_norm.train()
    ((block_norm(unit(x)) - target) ** 2).mean().backward()
    grad = unit.gate_logits.bias.grad.abs()
    assert unit.last_open_rate == pytest.approx(7 / 8)
    return float(grad[0] / grad[1:].mean())


def test_a_gate_closed_for_the_whole_batch_gets_an_ordinary_gradient_when_it_gates_after_the_norm():
    # gating before the block's BatchNorm hands the closed channel a zero-variance input, whose
    # backward divides by sqrt(eps); gating the normalised map does not
    assert _closed_channel_gradient_ratio(gate_after_norm=False) > 50
    assert _closed_channel_gradient_ratio(gate_after_norm=True) < 10


@pytest.mark.parametrize("dim", [1, 2])
def test_gate_after_norm_is_the_gates_times_a_batchnorm_and_the_block_adds_none(dim):
    unit = layers.build("hard", 4, 8, 3, dim=dim, padding=1, gate_after_norm=True).double()
    assert unit.normalizes_output and isinstance(layers.norm_after(unit, 8, dim), nn.Identity)
    assert not layers.build("hard", 4, 8, 3, dim=dim, padding=1).normalizes_output
    with torch.no_grad():
        nn.init.normal_(unit.gate_logits.weight, std=2.0)
        unit.gate_logits.bias.copy_(torch.linspace(-4, 4, 8))
    x = make_input(dim, batch=3, dtype=torch.float64)
    for mode in (True, False):
        unit.train(mode)
        norm = copy.deepcopy(unit.norm)  # the same running statistics, before this forward updates them
        y = unit(x)
        gates = (unit.gate_probabilities(x) > 0.5).to(x.dtype)
        expected = norm(CONV[dim](x, unit.weight, None, 1, 1)) * expand(gates, dim)
        torch.testing.assert_close(y.detach(), expected.detach(), rtol=1e-12, atol=1e-12)
        assert torch.all(y.detach()[gates == 0] == 0)


@pytest.mark.parametrize("batch", [1, 3])
def test_gate_after_norm_inference_normalises_only_the_open_channels_exactly(batch):
    unit = layers.build("hard", 4, 8, 3, padding=1, gate_after_norm=True).double()
    with torch.no_grad():
        nn.init.normal_(unit.gate_logits.weight, std=2.0)
        unit.gate_logits.bias.copy_(torch.linspace(-4, 4, 8))
        unit.norm.running_mean.normal_()
        unit.norm.running_var.uniform_(0.5, 2.0)
        unit.norm.weight.normal_()
        unit.norm.bias.normal_()
    x = make_input(2, batch=batch, dtype=torch.float64)
    unit.eval()
    gates = (unit.gate_probabilities(x) > 0.5).to(x.dtype)
    assert 0 < gates.amax(0).sum() < 8, "the test needs some channels closed for the whole batch"
    expected = unit.norm(CONV[2](x, unit.weight, None, 1, 1)) * expand(gates, 2)
    torch.testing.assert_close(unit(x), expected, rtol=1e-12, atol=1e-12)


def test_the_blocks_leave_out_their_norm_after_a_unit_that_normalises_itself():
    from dynlab.models import resnet18, tsresnet
    image = resnet18("hard", 10, width=8, gate_after_norm=True)
    assert isinstance(image.layer1[0].bn1, nn.Identity) and isinstance(image.layer1[0].bn2, nn.Identity)
    assert isinstance(image.layer2[0].downsample[1], nn.BatchNorm2d)  # the static shortcut keeps its own
    series = tsresnet("hard", 5, channels=(8, 8, 8), gate_after_norm=True)
    assert all(isinstance(n, nn.Identity) for n in series.blocks[0].norms)
    assert all(isinstance(n, nn.BatchNorm1d) for n in tsresnet("hard", 5, channels=(8, 8, 8)).blocks[0].norms)
