"""The model-level protocol: temperature and its schedule, the attention record."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dynlab import layers
from layer_cases import ALL, SOFTMAX_ROUTED, half_open_hard, make_input, out_size, spatial_shape


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


def _expected_kinds(name, unit, batch, s_out, dim):
    """The shape ``ATTENTION_KINDS`` gives each kind the registry says ``name`` records."""
    k = getattr(unit, "kernels", 1)
    shapes = {"kernel": (batch, k), "channel": (batch, unit.in_channels), "filter": (batch, unit.out_channels),
              "spatial": (batch, 3 ** dim), "pixel": (batch, k, *s_out), "gates": (batch, unit.out_channels),
              "orientation": (batch, unit.out_channels, *s_out), "se": (batch, unit.out_channels)}
    assert set(shapes) == set(layers.ATTENTION_KINDS)
    return {kind: shapes[kind] for kind in layers.get(name).attention}


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
    expected = _expected_kinds(name, unit, batch, s_out, dim)
    if not expected:
        assert result == {}
    else:
        owner = "2" if post is not None else "0"
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

    hard = half_open_hard(2)
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
