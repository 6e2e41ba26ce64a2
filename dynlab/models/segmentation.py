"""Semantic segmentation: a dilated ResNet-18 backbone with a DeepLabV3 head sized for its map.

The paper says it segmented "with Faster R-CNN", which is an object detector; a segmentation study
needs a per-pixel head, so dynlab uses DeepLabV3's (atrous spatial pyramid pooling, torchvision's
``ASPP``). The last stages are dilated instead of strided, so the backbone's output stride is 16 (or
8); the logits are upsampled to the input size.

The head should fit the map it sees. DeepLabV3's defaults (256 channels, rates 12, 24, 36) are made
for maps of 30 to 60 positions a side; on a 64x64 input at output stride 16 the map is 4x4 and every
off-centre tap of those rates lands in padding. The course profile therefore uses output stride 8
(an 8x8 map), rates 1, 2, 4 and 64 channels (``dynlab.profiles``).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from .. import layers
from .resnet import resnet18

IGNORE_INDEX = 255
#: what each stem divides the input by before the first stage
STEM_STRIDE = {"imagenet": 4, "small": 1}


def deeplab_head(in_channels: int, num_classes: int, channels: int = 256,
                 rates: Sequence[int] = (12, 24, 36)) -> nn.Sequential:
    """ASPP, a 3x3 convolution and a 1x1 classifier: torchvision's ``DeepLabHead`` with its width and
    rates as arguments (the defaults are DeepLabHead's, layer for layer)."""
    return nn.Sequential(
        ASPP(in_channels, list(rates), channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, num_classes, 1),
    )


def dilated_stages(stem: str, output_stride: int) -> int:
    """How many of ResNet-18's last stages to dilate so that the backbone has ``output_stride``."""
    stride = STEM_STRIDE[stem] * 8  # the three strided stages
    allowed = {stride >> dilate: dilate for dilate in range(4)}
    if output_stride not in allowed:
        raise ValueError(f"output_stride must be one of {', '.join(map(str, allowed))} with the {stem!r} stem, "
                         f"got {output_stride}")
    return allowed[output_stride]


class SegmentationModel(nn.Module):
    def __init__(self, variant="base", num_classes=21, in_channels=3, width=64, stem="imagenet", output_stride=16,
                 head_channels=256, atrous_rates=(12, 24, 36), attention_position="before_add", **unit_options):
        super().__init__()
        self.variant = variant
        self.output_stride = output_stride
        self.backbone = resnet18(variant, num_classes=1, in_channels=in_channels, stem=stem, width=width,
                                 dropout=0.0, dilate=dilated_stages(stem, output_stride),
                                 attention_position=attention_position, **unit_options)
        # classification parts of the backbone are not used
        self.backbone.fc = nn.Identity()
        self.head = deeplab_head(self.backbone.out_channels, num_classes, head_channels, atrous_rates)
        layers.bind(self)  # the forward enters through self, not through the backbone's forward

    def forward(self, x):
        logits = self.head(self.backbone.features(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_model(variant="base", num_classes=21, in_channels=3, width=64, stem="imagenet", output_stride=16,
                       head_channels=256, atrous_rates=(12, 24, 36), attention_position="before_add",
                       **unit_options) -> SegmentationModel:
    """Dilated ResNet-18 + DeepLabV3 head; logits at the input size, 255 = ignore.

    The defaults are DeepLabV3's (output stride 16, 256 channels, rates 12, 24, 36).
    ``attention_position``: where ``global``'s post-block attention sits, as in ``resnet18``."""
    return SegmentationModel(variant, num_classes, in_channels, width, stem, output_stride, head_channels,
                             atrous_rates, attention_position, **unit_options)
