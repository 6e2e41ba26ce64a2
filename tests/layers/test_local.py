"""``local``: the pixel-wise mixture of kernels and the kernel representation carried between units."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from dynlab import layers
from layer_cases import UNIT_CASES, conv1, expand, gap, make_input, out_size, spatial_shape


@pytest.mark.parametrize("dim,stride,groups", UNIT_CASES)
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
            response = conv1(xb, unit.weight[k], unit)[0]
            if bias:
                response = response + expand(unit.bias[k], dim)
            y = y + a[k:k + 1] * response
        outs.append(y[None])
    torch.testing.assert_close(unit(x), torch.cat(outs), rtol=1e-10, atol=1e-10)


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


@pytest.mark.parametrize("dim", [1, 2])
def test_local_needs_same_padding(dim):
    with pytest.raises(ValueError, match="same"):
        layers.build("local", 4, 4, 3, dim=dim, padding=0)
    with pytest.raises(ValueError, match="same"):
        layers.build("local", 4, 4, 3, dim=dim, padding=1, dilation=2)


def test_features_resets_the_kernel_representation_itself():
    """A forward that enters through ``features`` (Grad-CAM, feature extraction) starts from r = 0 too."""
    from dynlab.models import resnet18

    torch.manual_seed(0)
    model = resnet18("local", 3, stem="small", width=8).eval()
    x = torch.randn(2, 3, 16, 16)
    first = model.features(x)
    model(torch.randn(2, 3, 16, 16))  # another input in between
    torch.testing.assert_close(model.features(x), first, rtol=0, atol=0)
    model.train()
    for _ in range(2):  # a second training step through features() once raised "backward ... a second time"
        model.features(x).sum().backward()
