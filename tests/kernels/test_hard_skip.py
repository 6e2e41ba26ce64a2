"""``hard``'s inference path without gradients: closed output channels skipped where they come to
``skip_at_least`` MACs a sample (here mostly made 0, so that these small units skip), the unit's own
BatchNorm on the open channels only, and every output equal to the masked formula."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from dynlab import kernels, layers
from dynlab.bench import force_open_rate, vary_norm_statistics
from dynlab.flops import count
from dynlab.kernels.hard_attention import FastGatedConv
from dynlab.layers.hard_attention import GatedConv
from dynlab.models import resnet18


@pytest.fixture(autouse=True)
def skip_any_closed_channel(monkeypatch):
    monkeypatch.setattr(FastGatedConv, "skip_at_least", 0)


def _unit(dim: int, bias: bool, gate_after_norm: bool) -> FastGatedConv:
    torch.manual_seed(0)
    unit = layers.build("hard", 6, 8, 3, dim=dim, padding=1, bias=bias, gate_after_norm=gate_after_norm).double()
    assert isinstance(unit, FastGatedConv)
    with torch.no_grad():
        unit.gate_logits.bias[::2] = -4.0  # some gates closed for every input
        unit.gate_logits.bias[1::2] = 4.0
        if bias:
            unit.bias.normal_()
    vary_norm_statistics(unit)
    return unit.eval()


def _plain(unit: FastGatedConv) -> GatedConv:
    plain = copy.deepcopy(unit)
    plain.__class__ = GatedConv
    return plain


def _input(dim: int, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 6, *((7, 7) if dim == 2 else (11,)), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
@pytest.mark.parametrize("gate_after_norm", [False, True], ids=["gate", "gate-after-norm"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dim", [1, 2])
def test_the_skipping_path_equals_the_masked_formula(dim, batch, bias, gate_after_norm, no_grad):
    unit = _unit(dim, bias, gate_after_norm)
    plain = _plain(unit)
    x = _input(dim, batch)
    widths = []
    conv = unit.conv

    def spy(inp, weight, bias=None, groups=None):
        widths.append(tuple(weight.shape[:2]))
        return conv(inp, weight, bias, groups)

    unit.conv = spy
    unit.record_attention = plain.record_attention = True
    with no_grad():
        got, want = unit(x), plain(x)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    opened = plain.recorded["gates"]
    assert torch.all(got[opened == 0] == 0)
    torch.testing.assert_close(unit.recorded["gates"], opened)
    assert unit.last_open_rate == plain.last_open_rate == pytest.approx(0.5)
    assert unit.last_union_rate == plain.last_union_rate
    # the four open filters only
    assert widths == [(4, 6)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dim", [1, 2])
def test_too_few_closed_macs_convolve_every_channel_and_mask(dim, batch, monkeypatch):
    unit = _unit(dim, True, True)
    plain = _plain(unit)
    x = _input(dim, batch)
    closed_macs = unit.conv_macs(1, unit.output_positions(x)) // 2  # half the gates closed, per sample
    widths = []
    conv = unit.conv
    unit.conv = lambda inp, weight, bias=None, groups=None: widths.append(tuple(weight.shape[:2])) or conv(
        inp, weight, bias, groups)
    for threshold, width in ((closed_macs + 1, (8, 6)), (closed_macs, (4, 6))):
        monkeypatch.setattr(FastGatedConv, "skip_at_least", threshold)
        widths.clear()
        with torch.no_grad():
            torch.testing.assert_close(unit(x), plain(x), rtol=1e-10, atol=1e-10)
        assert widths == [width]


@pytest.mark.parametrize("batch", [1, 3])
def test_every_gate_open_or_closed_gives_what_the_formula_gives(batch):
    unit = _unit(2, True, True)
    plain = _plain(unit)
    x = _input(2, batch)
    with torch.no_grad():
        unit.gate_logits.bias.fill_(9.0)
        plain.gate_logits.bias.fill_(9.0)
        torch.testing.assert_close(unit(x), plain(x), rtol=1e-10, atol=1e-10)
        unit.gate_logits.bias.fill_(-9.0)
        plain.gate_logits.bias.fill_(-9.0)
        assert torch.equal(unit(x), plain(x)) and not unit(x).any()


def test_inference_after_training_steps_uses_the_new_weights_and_statistics():
    """Fused optimisers and BatchNorm's running statistics change tensors in place without bumping their
    version counters: nothing computed from them may be kept between calls."""
    from dynlab.engine import make_optimizer

    unit = _unit(2, True, True)
    x = _input(2, 1)
    optimizer = make_optimizer("adam", unit.parameters(), lr=0.1)
    with torch.no_grad():
        before = unit(x)
    unit.train()
    for _ in range(3):
        optimizer.zero_grad()
        unit(_input(2, 4)).square().mean().backward()
        optimizer.step()
    unit.eval()
    with torch.no_grad():
        after = unit(x)
        torch.testing.assert_close(after, _plain(unit)(x), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(before, after)


def test_with_gradients_on_the_unit_computes_the_masked_formula():
    """Grad-CAM asks for gradients in eval mode: they flow through every parameter as in the plain layer."""
    unit = _unit(2, False, True)
    x = _input(2, 1).requires_grad_()
    unit(x).sum().backward()
    assert x.grad is not None and unit.weight.grad is not None


def test_a_gated_resnet_without_gradients_equals_the_plain_layers():
    torch.manual_seed(0)
    fast = resnet18("hard", 10, width=8, gate_after_norm=True).double().eval()
    vary_norm_statistics(fast)
    force_open_rate(fast, 0.5)
    with kernels.disabled():
        plain = resnet18("hard", 10, width=8, gate_after_norm=True).double().eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-9, atol=1e-9)
    dense, executed, _ = count(fast, x)
    assert executed < dense


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_forcing_an_open_rate_opens_that_share_of_every_unit(rate):
    torch.manual_seed(0)
    model = resnet18("hard", 10, width=8).eval()
    force_open_rate(model, rate)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for unit in model.modules():
        if isinstance(unit, GatedConv):
            assert unit.last_open_rate == pytest.approx(math.floor(rate * unit.out_channels + 1e-9) / unit.out_channels)
    with pytest.raises(ValueError, match="share of gates open"):
        force_open_rate(model, 1.5)
