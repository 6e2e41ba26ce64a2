"""The ODConv converter against an independent ODConv ResNet-18 written here from the reference's
formulation and parameter names (Li, Zhou and Yao, ICLR 2022): 1x1-convolution attention heads,
weights of shape (K, C_out, C_in, k, k), one grouped convolution with the batch as groups."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynlab import layers
from dynlab.models import odconv_resnet18_from_reference


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
