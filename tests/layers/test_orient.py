"""``orient``: four rotations of each kernel and the max over them; equivariant under rotation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from layer_cases import UNIT_CASES, conv1, expand, make_input


@pytest.mark.parametrize("dim,stride,groups", UNIT_CASES)
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
        responses = torch.stack([conv1(x[b:b + 1], w, unit) for w in rotated])
        y = responses.max(dim=0).values
        if bias:
            y = y + expand(unit.bias[None], dim)
        outs.append(y)
    torch.testing.assert_close(unit(x), torch.cat(outs), rtol=1e-10, atol=1e-10)


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



@pytest.mark.parametrize("size", [5, 7])
def test_orient_rotating_the_input_by_90_degrees_shifts_the_winner_by_one_step(size):
    # a square odd-sized input of random float64 values has no ties, so the winner is unique
    torch.manual_seed(0)
    unit = layers.build("orient", 4, 6, 3, dim=2, padding=1).double()
    x = make_input(2, batch=2, size=size, dtype=torch.float64)

    def winner(inputs):
        return layers.collect_attention(unit, inputs)[""]["orientation"]

    upright = winner(x)
    assert len(upright.unique()) == 4  # every orientation wins somewhere: the check has teeth
    for r in (1, 2, 3):
        assert torch.equal(winner(torch.rot90(x, r, dims=(2, 3))), (torch.rot90(upright, r, dims=(2, 3)) + r) % 4)

@pytest.mark.parametrize("groups", [1, 2])
def test_orient_commutes_with_time_reversal_1d(groups):
    torch.manual_seed(0)
    unit = layers.build("orient", 4, 6, 3, dim=1, padding=1, groups=groups).double()
    x = make_input(1, batch=2, dtype=torch.float64)
    torch.testing.assert_close(unit(x.flip(-1)), unit(x).flip(-1), rtol=1e-12, atol=1e-12)


def test_orient_needs_square_kernels():
    with pytest.raises(ValueError, match="square"):
        layers.build("orient", 4, 4, (3, 5), padding=(1, 2))
    layers.build("orient", 4, 4, 5, dim=1, padding=2)  # any length in 1D
