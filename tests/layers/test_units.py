"""Every variant's conv unit: builds in 1D and 2D, runs forward and backward, is deterministic, refuses bad input."""
from __future__ import annotations

import pytest
import torch

from dynlab import layers
from dynlab.layers.unit import ConvUnit
from layer_cases import ALL, make_input, out_size, spatial_shape


def test_the_courses_eight_variants_are_registered_in_teaching_order():
    assert ALL[:8] == ["base", "global", "local", "hard", "dyconv", "odconv", "odconv4x", "orient"]
    assert len(set(ALL)) == len(ALL)


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
