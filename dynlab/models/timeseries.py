"""Models for the time-series task (UCR Adiac).

``tsresnet``: the light 1D residual network of Wang et al. (2017), used for every variant: three
residual blocks of 64, 128 and 128 channels, each with convolutions of kernel 7, 5 and 3, then global
average pooling. (Wang et al. use kernel 8; odd kernels keep 'same' padding symmetric.)

``net1_dcnn`` / ``net2_dcnn``: the paper's small CNNs (one or two conv layers -> BN -> ReLU -> max-pool
-> dropout -> fully connected), static (``variant="base"``) or with ``dyconv`` units, and the paper's
option of starting the dynamic kernels from a trained static twin (``init_dynamic_from_static``).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import layers
from ..layers.unit import norm_after
from .resnet import check_attention_position


class TSBlock(nn.Module):
    def __init__(self, in_channels, channels, kernels=(7, 5, 3), *, conv_layer, attn_layer=None,
                 attention_position="before_add"):
        super().__init__()
        self.attention_position = check_attention_position(attention_position)
        convs, norms, previous = [], [], in_channels
        for k in kernels:
            convs.append(conv_layer(previous, channels, k, dim=1, padding=k // 2))
            norms.append(norm_after(convs[-1], channels, dim=1))
            previous = channels
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.relu = nn.ReLU(inplace=True)
        self.attention = attn_layer(channels) if attn_layer is not None else nn.Identity()
        self.shortcut = nn.Sequential(nn.Conv1d(in_channels, channels, 1, bias=False), nn.BatchNorm1d(channels))

    def forward(self, x):
        out = x
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            out = norm(conv(out))
            if index < len(self.convs) - 1:
                out = self.relu(out)
        if self.attention_position == "after_add":
            return self.relu(self.attention(out + self.shortcut(x)))
        return self.relu(self.attention(out) + self.shortcut(x))


class TSResNet(nn.Module):
    def __init__(self, variant="base", num_classes=37, in_channels=1, channels=(64, 128, 128), dropout=0.0,
                 attention_position="before_add", **unit_options):
        super().__init__()
        conv_layer, attn_layer = layers.factories(variant, **unit_options)
        self.variant = variant
        blocks, previous = [], in_channels
        for c in channels:
            blocks.append(TSBlock(previous, c, conv_layer=conv_layer, attn_layer=attn_layer,
                                  attention_position=attention_position))
            previous = c
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(previous, num_classes)
        layers.bind(self)

    def forward(self, x):
        if x.dim() != 3:
            raise ValueError(f"TSResNet expects series of shape (batch, channels, length), got {tuple(x.shape)}")
        return self.fc(self.dropout(self.blocks(x).mean(dim=2)))


def tsresnet(variant="base", num_classes=37, in_channels=1, channels=(64, 128, 128), dropout=0.0,
             attention_position="before_add", **unit_options) -> TSResNet:
    """Wang et al.'s 1D ResNet with ``variant``'s conv units (every variant in the time-series task).

    ``attention_position``: where ``global``'s post-block attention sits, as in ``resnet18``."""
    return TSResNet(variant, num_classes, in_channels, tuple(channels), dropout, attention_position, **unit_options)


class PaperCNN(nn.Module):
    """The paper's Net1/Net2: conv -> BN -> ReLU -> max-pool (-> conv -> BN -> ReLU -> max-pool) -> dropout -> FC."""

    def __init__(self, variant, num_classes, length, layout, dropout=0.2, in_channels=1, **unit_options):
        super().__init__()
        if variant not in ("base", "dyconv"):
            raise ValueError(f"the paper's Net1/Net2 come static ('base') or dynamic ('dyconv'), got {variant!r}")
        conv_layer, _ = layers.factories(variant, **unit_options)
        self.variant = variant
        stages, previous, size = [], in_channels, length
        for channels, kernel in layout:
            stages += [conv_layer(previous, channels, kernel, dim=1, padding=kernel // 2),
                       nn.BatchNorm1d(channels), nn.ReLU(inplace=True), nn.MaxPool1d(2)]
            previous, size = channels, size // 2
        self.features = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(previous * size, num_classes)
        self.length = length

    def forward(self, x):
        if x.dim() != 3 or x.shape[-1] != self.length:
            raise ValueError(f"expects series of shape (batch, 1, {self.length}), got {tuple(x.shape)}")
        return self.fc(self.dropout(self.features(x).flatten(1)))


def net1_dcnn(variant="dyconv", num_classes=37, length=176, dropout=0.2, **unit_options) -> PaperCNN:
    """The paper's Net1: one conv layer of 64 channels, kernel 7."""
    return PaperCNN(variant, num_classes, length, [(64, 7)], dropout, **unit_options)


def net2_dcnn(variant="dyconv", num_classes=37, length=176, dropout=0.2, **unit_options) -> PaperCNN:
    """The paper's Net2: Net1 plus a second conv layer of 128 channels, kernel 5."""
    return PaperCNN(variant, num_classes, length, [(64, 7), (128, 5)], dropout, **unit_options)


@torch.no_grad()
def init_dynamic_from_static(dynamic: nn.Module, static: nn.Module, noise: float = 0.01, freeze: bool = True,
                             seed: int | None = None) -> nn.Module:
    """The paper's pre-initialisation: each of a dynamic unit's K kernels = the trained static kernel + noise.

    ``dynamic`` and ``static`` must have the same layout (e.g. ``net1_dcnn("dyconv")`` and
    ``net1_dcnn("base")``). Matching BN and FC weights are copied too. With ``freeze=True`` the kernels
    stop learning and only the attention, BN and classifier train. ``noise`` is relative to each
    kernel's standard deviation.
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    static_modules = dict(static.named_modules())
    copied = 0
    for name, module in dynamic.named_modules():
        source = static_modules.get(name)
        if isinstance(module, layers.DynamicConv):
            if not isinstance(source, layers.StaticConv) or source.weight.shape != module.weight.shape[1:]:
                raise ValueError(f"no static convolution of shape {tuple(module.weight.shape[1:])} at {name!r}")
            scale = noise * source.weight.std()
            for kernel in module.weight:
                kernel.copy_(source.weight + scale * torch.randn(kernel.shape, generator=generator))
            if module.bias is not None and source.bias is not None:
                module.bias.copy_(source.bias.expand_as(module.bias))
            module.weight.requires_grad_(not freeze)
            copied += 1
        elif isinstance(module, (nn.BatchNorm1d, nn.Linear)) and type(source) is type(module):
            module.load_state_dict(source.state_dict())
    if copied == 0:
        raise ValueError("the dynamic model has no dyconv units to initialise")
    return dynamic
