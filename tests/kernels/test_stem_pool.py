"""``StemMaxPool2d`` computes ``nn.MaxPool2d``'s values and gradients exactly, through channels-last memory."""
import pytest
import torch
from torch import nn

from dynlab.kernels.stem_pool import StemMaxPool2d
from dynlab.models import resnet18

GEOMETRIES = [  # (batch, channels, height, width, kernel, stride, padding)
    (4, 8, 32, 32, 3, 2, 1),  # the ImageNet stem's pool
    (1, 3, 7, 9, 3, 2, 1),
    (2, 5, 10, 6, 2, 2, 0),
    (3, 4, 11, 11, 3, 1, 1),
    (2, 6, 9, 8, (3, 2), (2, 1), (1, 0)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_values_and_gradients_are_max_pools_ties_included(geometry):
    batch, channels, height, width, kernel, stride, padding = geometry
    torch.manual_seed(0)
    # after a ReLU many windows are all zeros (here about one in five): the gradient must go to the same
    # one of the tied inputs
    x = torch.relu(torch.randn(batch, channels, height, width, dtype=torch.float64) - 1)
    ours, theirs = StemMaxPool2d(kernel, stride, padding), nn.MaxPool2d(kernel, stride, padding)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(a), theirs(b)
    assert out_a.is_contiguous() and torch.equal(out_a, out_b)
    grad = torch.randn_like(out_b)
    out_a.backward(grad)
    out_b.backward(grad)
    assert torch.equal(a.grad, b.grad)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_channels_last_inputs_and_other_options_are_the_plain_pool():
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    pool = StemMaxPool2d(3, 2, 1)
    assert not pool._through_channels_last(x)
    assert pool(x).is_contiguous(memory_format=torch.channels_last)  # as nn.MaxPool2d keeps it
    assert not StemMaxPool2d(3, 2, 1, ceil_mode=True)._through_channels_last(x.contiguous())
    assert StemMaxPool2d(3, 2, 1)._through_channels_last(x.contiguous())
    out, indices = StemMaxPool2d(3, 2, 1, return_indices=True)(x.contiguous())
    assert torch.equal(indices, nn.MaxPool2d(3, 2, 1, return_indices=True)(x.contiguous())[1])


def test_imagenet_stem_uses_it():
    assert isinstance(resnet18("base", 10).maxpool, StemMaxPool2d)
