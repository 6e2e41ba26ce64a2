"""ResNet-18 with a pluggable conv unit, for images (dim=2) and series (dim=1).

Written after torchvision's ``resnet.py``: the same BasicBlock and stage layout, except that the
block's two 3x3 convolutions come from an injected ``conv_layer`` and an optional post-block
attention (``global``'s squeeze-and-excitation) from ``attn_layer``, as torchvision injects
``norm_layer`` and timm ``attn_layer``. ``resnet18`` resolves a variant's name to those two layers
once, through the registry. The stem and the 1x1 downsample convolutions stay static, as in the
ODConv reference.

``attention_position`` says where the post-block attention sits: ``"before_add"`` (the default, as
SE-ResNet places it) scales the residual branch after the block's last BN, before the shortcut is
added; ``"after_add"`` scales the sum, shortcut included, before the final ReLU. For attention with
positive weights (SE's sigmoid) scaling before or after that ReLU is the same, so ``"after_add"`` is
Hu et al.'s "SE-POST" placement.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .. import kernels, layers
from ..layers.unit import check_dim, norm_after

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_AVGPOOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}
STEMS = ("imagenet", "small")

ConvLayer = Callable[..., nn.Module]
AttnLayer = Callable[[int], nn.Module]
#: where a block's post-block attention sits: on the residual branch, or on the sum with the shortcut
ATTENTION_POSITIONS = ("before_add", "after_add")


def check_attention_position(position: str) -> str:
    """``position`` if it is one of ``ATTENTION_POSITIONS``; otherwise a one-line error that lists them."""
    if position not in ATTENTION_POSITIONS:
        raise ValueError(f"attention_position must be 'before_add' (on the residual branch, the default) or "
                         f"'after_add' (on the sum with the shortcut), got {position!r}")
    return position


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1, dim: int = 2, *,
                 conv_layer: ConvLayer, attn_layer: AttnLayer | None = None, attention_position: str = "before_add"):
        super().__init__()
        self.attention_position = check_attention_position(attention_position)
        self.conv1 = conv_layer(in_channels, channels, 3, dim=dim, stride=stride, padding=dilation, dilation=dilation)
        self.bn1 = norm_after(self.conv1, channels, dim)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv_layer(channels, channels, 3, dim=dim, padding=dilation, dilation=dilation)
        self.bn2 = norm_after(self.conv2, channels, dim)
        self.attention = attn_layer(channels) if attn_layer is not None else nn.Identity()
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                _CONV[dim](in_channels, channels, 1, stride=stride, bias=False), _BN[dim](channels)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attention_position == "after_add":
            return self.relu(self.attention(out + identity))
        return self.relu(self.attention(out) + identity)


class ResNet(nn.Module):
    """BasicBlock ResNet ([2, 2, 2, 2] blocks is ResNet-18) built from ``conv_layer`` and ``attn_layer``.

    ``variant`` only names the model (checkpoints record it); ``resnet18`` sets it.
    """

    def __init__(self, conv_layer: ConvLayer, attn_layer: AttnLayer | None = None, num_classes=1000, dim=2,
                 in_channels=3, stem="imagenet", width=64, dropout=0.2, blocks=(2, 2, 2, 2), dilate: int = 0,
                 variant: str | None = None, attention_position: str = "before_add"):
        super().__init__()
        check_dim(dim)
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if not 0 <= dilate < len(blocks):
            raise ValueError(f"dilate (how many of the last stages trade their stride for dilation) must be in "
                             f"0..{len(blocks) - 1}, got {dilate}")
        if width < 1 or num_classes < 1:
            raise ValueError(f"width and num_classes must be positive, got width={width}, num_classes={num_classes}")
        self.variant, self.dim, self.stem_kind = variant, dim, stem
        if stem == "imagenet":
            self.conv1 = _CONV[dim](in_channels, width, 7, stride=2, padding=3, bias=False)
            pool = kernels.stem_pool_class() if dim == 2 else nn.MaxPool1d
            self.maxpool = pool(3, stride=2, padding=1)
        else:
            self.conv1 = _CONV[dim](in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = _BN[dim](width)
        self.relu = nn.ReLU(inplace=True)
        stages, channels, dilation = [], width, 1
        layers_of = dict(conv_layer=conv_layer, attn_layer=attn_layer,
                         attention_position=check_attention_position(attention_position))
        for index, count in enumerate(blocks):
            out_channels = width * 2 ** index
            stride, first_dilation = (1 if index == 0 else 2), dilation
            if index >= len(blocks) - dilate:  # as torchvision's replace_stride_with_dilation
                dilation, stride = dilation * stride, 1
            stage = [BasicBlock(channels, out_channels, stride, first_dilation, dim, **layers_of)]
            stage += [BasicBlock(out_channels, out_channels, 1, dilation, dim, **layers_of) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = channels
        self.avgpool = _AVGPOOL[dim](1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()
        layers.bind(self)

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def check_input(self, x):
        expected = self.dim + 2
        if x.dim() != expected:
            axes = "length" if self.dim == 1 else "height, width"
            raise ValueError(f"{type(self).__name__} (dim={self.dim}) expects input (batch, channels, {axes}), "
                             f"got shape {tuple(x.shape)}")

    def features(self, x):
        """Feature maps after layer4 (before pooling). A forward of its own: ``local``'s kernel
        representation starts from zero here too, whoever calls it."""
        self.check_input(x)
        layers.reset_kernel_representation(self)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))


def resnet18(variant="base", num_classes=1000, dim=2, in_channels=3, stem="imagenet", width=64, dropout=0.2,
             dilate=0, attention_position="before_add", **unit_options) -> ResNet:
    """BasicBlock ResNet-18 whose 3x3 block convolutions are ``variant``'s conv unit.

    ``stem="imagenet"``: 7x7 stride-2 convolution and max-pool (224x224 as in the paper, or 64x64).
    ``stem="small"``: 3x3 stride-1 convolution, no max-pool (32x32 and 64x64 inputs).
    ``width`` scales every stage (64 is ResNet-18; the quick profile uses a narrower network).
    ``dilate``: how many of the last stages are dilated instead of strided (for segmentation: with the
    ImageNet stem, 1 gives output stride 16, 2 gives 8).
    ``attention_position``: ``"before_add"`` (default) or ``"after_add"``, where the post-block
    attention of ``global`` sits (see the module's docstring).
    """
    conv_layer, attn_layer = layers.factories(variant, **unit_options)
    return ResNet(conv_layer, attn_layer, num_classes, dim, in_channels, stem, width, dropout,
                  dilate=dilate, variant=variant, attention_position=attention_position)
