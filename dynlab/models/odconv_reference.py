"""Load checkpoints of the reference ODConv implementation (Li, Zhou and Yao, ICLR 2022).

The reference ``od_resnet18`` keeps every 3x3 block convolution as an ODConv with a weight of shape
(K, C_out, C_in/groups, k, k) and an ``attention`` module whose FC layers are 1x1 convolutions
(``fc`` without bias, ``bn``, ``channel_fc``, ``filter_fc``, ``spatial_fc``, ``kernel_fc``). dynlab's
``odconv`` unit uses the same names with ``nn.Linear`` layers, and its ResNet-18 the same module
names as torchvision's and the reference's, so conversion is a reshape of those FC weights.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import layers
from .resnet import ResNet, resnet18


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that DataParallel/DistributedDataParallel checkpoints carry."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def odconv_resnet18_from_reference(state_dict: Mapping[str, torch.Tensor], num_classes: int | None = None) -> ResNet:
    """A dynlab ODConv ResNet-18 (in eval mode, temperature 1) from a reference ``od_resnet18`` state dict.

    K (``kernel_num`` 1 or 4) and the class count are read from the checkpoint. Pass a checkpoint's
    ``state_dict`` entry if it wraps one.
    """
    source = _strip_prefix(state_dict.get("state_dict", state_dict) if isinstance(state_dict, Mapping) else state_dict)
    probe = source.get("layer1.0.conv1.weight")
    if probe is None or probe.dim() != 5 or "layer1.0.conv1.attention.fc.weight" not in source:
        raise ValueError(
            "this does not look like a reference od_resnet18 state dict: expected 'layer1.0.conv1.weight' of "
            "shape (K, C_out, C_in, 3, 3) and 'layer1.0.conv1.attention.fc.weight'"
        )
    kernels = probe.shape[0]
    found_classes = source["fc.weight"].shape[0]
    if num_classes is not None and num_classes != found_classes:
        raise ValueError(f"the checkpoint's classifier has {found_classes} classes, not {num_classes}")
    model = resnet18("odconv", num_classes=found_classes, kernels=kernels)
    target = model.state_dict()
    converted = {}
    for name, value in source.items():
        if name not in target:
            raise ValueError(f"unexpected key {name!r} in the reference state dict (is it an od_resnet18?)")
        expected = target[name].shape
        if value.shape != expected:
            if value.dim() == 4 and value.shape[2:] == (1, 1) and value.shape[:2] == expected:
                value = value.reshape(expected)  # 1x1 convolution on a pooled vector -> linear layer
            else:
                raise ValueError(f"{name}: shape {tuple(value.shape)} in the checkpoint, {tuple(expected)} expected")
        converted[name] = value
    missing = sorted(set(target) - set(converted))
    if missing:
        raise ValueError(f"the reference state dict lacks {len(missing)} entries, e.g. {missing[:3]}")
    model.load_state_dict(converted)
    layers.set_temperature(model, 1.0)
    return model.eval()
