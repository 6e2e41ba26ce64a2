"""``global``: squeeze-and-excitation after the block."""
from __future__ import annotations

import math

import pytest
import torch

from dynlab import layers
from layer_cases import ALL, make_input


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


def test_global_post_block_wrong_input():
    post = layers.build_post_block("global", 8)
    with pytest.raises(ValueError, match="expects"):
        post(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="expects"):
        post(torch.randn(2, 8))
