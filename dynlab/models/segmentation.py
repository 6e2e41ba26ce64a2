"""Semantic segmentation: a dilated ResNet-18 backbone with torchvision's DeepLabV3 head.

The paper says it segmented "with Faster R-CNN", which is an object detector; a segmentation study
needs a per-pixel head, so dynlab uses DeepLabV3's (atrous spatial pyramid pooling). layer4 is dilated
instead of strided, so the backbone's output stride is 16; the logits are upsampled to the input size.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from .. import layers
from .resnet import resnet18

IGNORE_INDEX = 255


class SegmentationModel(nn.Module):
    def __init__(self, variant="base", num_classes=21, in_channels=3, width=64, stem="imagenet", **unit_options):
        super().__init__()
        self.variant = variant
        self.backbone = resnet18(variant, num_classes=1, in_channels=in_channels, stem=stem, width=width,
                                 dropout=0.0, dilate_last=True, **unit_options)
        # classification parts of the backbone are not used
        self.backbone.fc = nn.Identity()
        self.head = DeepLabHead(self.backbone.out_channels, num_classes)
        layers.bind(self)  # the forward enters through self, not through the backbone's forward

    def forward(self, x):
        logits = self.head(self.backbone.features(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_model(variant="base", num_classes=21, in_channels=3, width=64, stem="imagenet",
                       **unit_options) -> SegmentationModel:
    """ResNet-18 (layer4 dilated, output stride 16) + DeepLabV3 head; logits at the input size, 255 = ignore."""
    return SegmentationModel(variant, num_classes, in_channels, width, stem, **unit_options)
