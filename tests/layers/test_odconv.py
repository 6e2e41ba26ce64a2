"""``odconv`` / ``odconv4x``: four attentions on the kernel; the reference implementation's weights load.

The converter is tested against an independent ODConv ResNet-18 written here from the reference's
formulation and parameter names (Li, Zhou and Yao, ICLR 2022): 1x1-convolution attention heads,
weights of shape (K, C_out, C_in, k, k), one grouped convolution with the batch as groups."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from dynlab.models import odconv_resnet18_from_reference
from layer_cases import CONV, UNIT_CASES, conv1, every_version, expand, gap, make_input


@pytest.mark.parametrize("dim", [1, 2])
def test_odconv_pointwise_has_no_spatial_head(dim):
    torch.manual_seed(0)
    unit = layers.build("odconv4x", 4, 6, 1, dim=dim).double().eval()
    assert unit.attention.spatial_fc is None and unit.attention.kernel_fc is not None
    x = make_input(dim, batch=3, dtype=torch.float64)
    outputs = []
    for _, version in every_version(unit):
        outputs.append(version(x))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], rtol=1e-12, atol=1e-12)
    assert set(layers.collect_attention(unit, x)[""]) == {"channel", "filter", "kernel"}


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
    for _, version in every_version(unit):
        for mode in (True, False):
            version.train(mode)
            torch.testing.assert_close(version(x), expected, rtol=1e-12, atol=1e-12)

    # finite biases: sigmoid gives a constant c on the channel, spatial and filter heads -> c^3 W
    with torch.no_grad():
        for head in (att.channel_fc, att.filter_fc, att.spatial_fc):
            head.bias.fill_(0.4)
    c = torch.sigmoid(torch.tensor(0.4, dtype=torch.float64))
    unit.eval()
    torch.testing.assert_close(unit(x), CONV[dim](x, c ** 3 * w, None, 2, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim,stride,groups", UNIT_CASES + [pytest.param(2, 1, 4, id="d2-s1-depthwise"),
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
        y = conv1(xb * expand(a_channel[None], dim), w, unit)
        if att.filter_fc is not None:
            y = y * expand(torch.sigmoid(att.filter_fc(h) / t)[None], dim)
        outs.append(y)
    expected = torch.cat(outs)
    for _, version in every_version(unit):
        torch.testing.assert_close(version(x), expected, rtol=1e-10, atol=1e-10)


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


def test_odconv_refuses_bias():
    for name in ("odconv", "odconv4x"):
        with pytest.raises(ValueError, match="bias"):
            layers.build(name, 4, 4, 3, padding=1, bias=True)


class RefAttention(nn.Module):
    def __init__(self, cin, cout, k, kernel_num, reduction=0.0625, min_channel=16):
        super().__init__()
        hidden = max(int(cin * reduction), min_channel)
        self.k, self.kernel_num, self.temperature = k, kernel_num, 1.0
        self.fc = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.channel_fc = nn.Conv2d(hidden, cin, 1)
        self.filter_fc = nn.Conv2d(hidden, cout, 1)
        self.spatial_fc = nn.Conv2d(hidden, k * k, 1)
        if kernel_num > 1:
            self.kernel_fc = nn.Conv2d(hidden, kernel_num, 1)

    def forward(self, x):
        h = F.relu(self.bn(self.fc(F.adaptive_avg_pool2d(x, 1))))
        b = x.shape[0]
        channel = torch.sigmoid(self.channel_fc(h).view(b, -1, 1, 1) / self.temperature)
        filt = torch.sigmoid(self.filter_fc(h).view(b, -1, 1, 1) / self.temperature)
        spatial = torch.sigmoid(self.spatial_fc(h).view(b, 1, 1, 1, self.k, self.k) / self.temperature)
        if self.kernel_num > 1:
            kernel = F.softmax(self.kernel_fc(h).view(b, -1, 1, 1, 1, 1) / self.temperature, dim=1)
        else:
            kernel = torch.ones(b, 1, 1, 1, 1, 1)
        return channel, filt, spatial, kernel


class RefODConv2d(nn.Module):
    def __init__(self, cin, cout, stride, kernel_num):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.attention = RefAttention(cin, cout, 3, kernel_num)
        self.weight = nn.Parameter(torch.randn(kernel_num, cout, cin, 3, 3) * 0.05)

    def forward(self, x):
        channel, filt, spatial, kernel = self.attention(x)
        b, _, h, w = x.shape
        x = (x * channel).reshape(1, -1, h, w)
        weight = (spatial * kernel * self.weight.unsqueeze(0)).sum(dim=1).reshape(-1, self.cin, 3, 3)
        out = F.conv2d(x, weight, stride=self.stride, padding=1, groups=b)
        return out.view(b, self.cout, out.shape[-2], out.shape[-1]) * filt


class RefBlock(nn.Module):
    def __init__(self, cin, cout, stride, kernel_num):
        super().__init__()
        self.conv1 = RefODConv2d(cin, cout, stride, kernel_num)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = RefODConv2d(cout, cout, 1, kernel_num)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + identity)


class RefODResNet18(nn.Module):
    def __init__(self, num_classes, kernel_num):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for index, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}",
                    nn.Sequential(RefBlock(cin, cout, stride, kernel_num), RefBlock(cout, cout, 1, kernel_num)))
            cin = cout
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _randomise_norm_statistics(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))


@pytest.mark.parametrize("kernel_num, num_classes", [(1, 10), (4, 7)])
def test_converted_reference_gives_the_same_logits(kernel_num, num_classes):
    torch.manual_seed(0)
    reference = RefODResNet18(num_classes, kernel_num)
    _randomise_norm_statistics(reference)
    reference.eval()
    model = odconv_resnet18_from_reference(reference.state_dict())
    assert not model.training
    assert all(m.temperature == 1.0 for m in model.modules() if isinstance(m, layers.ODConv))
    assert {m.kernels for m in model.modules() if isinstance(m, layers.ODConv)} == {kernel_num}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == (2, num_classes)
    relative = (got - expected).norm() / expected.norm()
    assert relative < 1e-5


def test_dataparallel_prefix_and_wrapped_checkpoint():
    torch.manual_seed(0)
    reference = RefODResNet18(5, 1).eval()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}
    model = odconv_resnet18_from_reference(wrapped, num_classes=5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def test_wrong_checkpoints_are_refused_clearly():
    reference = RefODResNet18(5, 1)
    with pytest.raises(ValueError, match="5 classes, not 10"):
        odconv_resnet18_from_reference(reference.state_dict(), num_classes=10)
    with pytest.raises(ValueError, match="does not look like"):
        odconv_resnet18_from_reference({"fc.weight": torch.zeros(3, 3)})
    broken = dict(reference.state_dict())
    broken.pop("layer2.0.conv1.attention.spatial_fc.bias")
    with pytest.raises(ValueError, match="lacks"):
        odconv_resnet18_from_reference(broken)
