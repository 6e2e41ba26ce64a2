"""Self-checks for notebook 01 (the plain ResNet-18, the baseline).

- ``check_1(count)``: how many blocks of the quick classification ResNet-18 have a downsample shortcut.
- ``check_2(macs)``: the MACs of ResNet-18's ``layer1[0].conv1`` at 224x224.
- ``check_3(ratio)``: how many times more MACs the quick classification network does at width 64.
- ``check_4(ratio)``: how many times more MACs the small stem costs than the ImageNet stem on 64x64 images.
- ``check_5(pair, model)``: the two classes a trained classifier confuses most.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from . import PROFILE, close, course_data, is_number, number, verdict

#: the input side of the quick profile's image tasks, and the width of the full-size ResNet-18
SIDE, FULL_WIDTH = 64, 64


def _quick_classification(**changes) -> torch.nn.Module:
    """The quick profile's classification ResNet-18 (10 classes), with ``changes`` to its model options."""
    from .. import models, profiles

    options = {**profiles.get_profile(PROFILE).model_kwargs("classification"), **changes}
    return models.resnet18("base", 10, **options)


def check_1(count) -> bool:
    """Exercise 1: the number of blocks whose shortcut is a 1x1 convolution (a downsample)."""
    from ..models import BasicBlock

    if not is_number(count):
        return verdict(False, "", f"{count!r} is not a number; count the blocks, e.g. 2")
    blocks = {name: block for name, block in _quick_classification().named_modules() if isinstance(block, BasicBlock)}
    with_downsample = [name for name, block in blocks.items() if block.downsample is not None]
    if close(count, len(with_downsample), rel=0):
        return verdict(True, f"{', '.join(with_downsample)}: the first block of every stage after the first halves "
                             "the map and doubles the channels, so its shortcut must change shape too.", "")
    if float(count) > len(with_downsample):
        why = (f"{number(count)} is too many: layer1's first block keeps the shape (as many channels in as out, "
               "stride 1), so its shortcut is the identity")
    else:
        why = f"{number(count)} is too few: every stage after the first starts with a block of stride 2"
    return verdict(False, "", why + f" (the network has {len(blocks)} blocks)")


def check_2(macs) -> bool:
    """Exercise 2: MACs of ResNet-18's layer1[0].conv1 on a 224x224 image (56x56 map, 64 -> 64 channels); exact."""
    from .. import flops, models

    if not is_number(macs):
        return verdict(False, "", f"{macs!r} is not a number; give the MACs as one number, e.g. 1.2e6")
    expected = flops.cost(models.resnet18("base").layer1[0].conv1, (1, 64, 56, 56)).macs
    if close(macs, expected, rel=1e-6):
        return verdict(True, f"64 out x 56 x 56 positions x 64 in x 3 x 3 = {expected:,} MACs, as flops.cost counts.", "")
    if close(macs, 2 * expected, rel=1e-6):
        why = f"{number(macs)} is the FLOPs (2 per MAC); a MAC is one multiply and one add together"
    elif close(macs, expected / 9, rel=1e-6):
        why = f"{number(macs)} leaves out the kernel: each output value takes 3 x 3 x 64 multiply-adds"
    elif close(macs, expected * 16, rel=1e-6):
        why = f"{number(macs)} counts 224 x 224 positions; after the stem the map is 56 x 56"
    else:
        why = f"{number(macs)} is off; multiply output channels x output positions x input channels x kernel area"
    return verdict(False, "", why)


def macs_at_width(width: int) -> int:
    """MACs of the quick classification network on one 64x64 image, at ``width``."""
    from .. import flops

    return flops.cost(_quick_classification(width=width), (1, 3, SIDE, SIDE)).macs


def check_3(ratio) -> bool:
    """Exercise 3: MACs of the quick classification network at width 64 / at its width 16 (within 2%)."""
    from .. import flops, profiles

    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give the ratio as one number, e.g. 3.5")
    quick_width = profiles.get_profile(PROFILE).classification.width
    wide, narrow = macs_at_width(FULL_WIDTH), macs_at_width(quick_width)
    expected = wide / narrow
    widths = FULL_WIDTH / quick_width
    if close(ratio, expected, rel=0.02):
        return verdict(True, f"{wide:,} / {narrow:,} = {expected:.2f}, below {widths ** 2:g}: the stem's 7x7 "
                             "convolution reads 3 colour channels at any width, so its MACs grow only "
                             f"{widths:g} times, and at width {quick_width} it is a large share of the total.", "")
    params = flops.cost(_quick_classification(width=FULL_WIDTH), (1, 3, SIDE, SIDE)).params / \
        flops.cost(_quick_classification(), (1, 3, SIDE, SIDE)).params
    if close(ratio, params, rel=0.005):
        why = f"{number(ratio)} is the ratio of the parameters; count the MACs on a 64x64 input"
    elif close(ratio, widths ** 2, rel=0.02):
        why = (f"{widths ** 2:g} is what the stages' 3x3 convolutions alone give; count the whole network: the stem's "
               "convolution has 3 input channels whatever the width")
    elif close(ratio, widths, rel=0.02):
        why = f"{number(ratio)} is the ratio of the widths; a convolution's MACs grow with input x output channels"
    else:
        why = f"{number(ratio)} is off; compare flops.cost(model, (1, 3, 64, 64)).macs at width 64 and at width 16"
    return verdict(False, "", why)


def check_4(ratio) -> bool:
    """Exercise 4: MACs of the quick classification network with the small stem / with its ImageNet stem, one
    64x64 image (within 2%)."""
    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give the ratio as one number, e.g. 3.5")
    small, imagenet = macs_with_stem("small"), macs_with_stem("imagenet")
    expected = small / imagenet
    wide = macs_with_stem("small", FULL_WIDTH) / macs_with_stem("imagenet", FULL_WIDTH)
    if close(ratio, expected, rel=0.02):
        return verdict(True, f"{small:,} / {imagenet:,} = {expected:.2f}: without the stem's stride and pool every stage "
                             "works on 16 times the positions, and only the stem's own convolution gets cheaper.", "")
    if close(ratio, wide, rel=0.02):
        why = (f"{number(ratio)} is the ratio at width {FULL_WIDTH} (the table of section 2); build the quick "
               "network, at its own width")
    elif close(ratio, 1 / expected, rel=0.02):
        why = f"{number(ratio)} is ImageNet stem / small stem; give small / ImageNet, the larger number"
    elif close(ratio, 16, rel=0.02):
        why = ("16 is the ratio of the stages' positions; the stems themselves cost different amounts: count the "
               "whole networks")
    else:
        why = f"{number(ratio)} is off; compare flops.cost(model, (1, 3, 64, 64)).macs of the two networks"
    return verdict(False, "", why)


def macs_with_stem(stem: str, width: int | None = None) -> int:
    """MACs of the quick classification network with ``stem`` on one 64x64 image (at ``width``, if given)."""
    from .. import flops

    changes = {"stem": stem, **({"width": width} if width is not None else {})}
    return flops.cost(_quick_classification(**changes), (1, 3, SIDE, SIDE)).macs


def _predictions(model: torch.nn.Module, dataset) -> tuple[torch.Tensor, torch.Tensor]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predicted, targets = [], []
    try:
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=256):
                predicted.append(model(x.to(device)).argmax(1).cpu())
                targets.append(y)
    finally:
        model.train(was_training)
    return torch.cat(predicted), torch.cat(targets)


def confusions(model: torch.nn.Module, data=None) -> tuple[torch.Tensor, list[str]]:
    """Errors between each pair of classes on the test split, both directions together: (C, C), symmetric."""
    from ..metrics import ConfusionMatrix

    data = course_data(data)
    predicted, targets = _predictions(model, data.test)
    matrix = ConfusionMatrix(data.num_classes).update(predicted, targets).matrix
    both_ways = matrix + matrix.T
    both_ways.fill_diagonal_(0)
    return both_ways, list(data.class_names)


def check_5(pair, model, data=None) -> bool:
    """Exercise 5: the two classes ``model`` confuses most on the test split, counting both directions.

    ``data``: the run's data (``runs["classification"].data``); the quick profile's by default. Any pair
    tied for the most errors is right.
    """
    errors, names = confusions(model, data)
    try:
        given = {str(name).strip().lower() for name in pair}
    except TypeError:
        given = set()
    if len(given) != 2 or not given <= set(names):
        return verdict(False, "", f"give two class names, e.g. (\"disc\", \"ring\"); the classes are {', '.join(names)}")
    a, b = (names.index(name) for name in given)
    most = int(errors.max())
    if most == 0:
        return verdict(False, "", "this model makes no errors on the test split: no pair is confused")
    if int(errors[a, b]) == most:
        return verdict(True, f"{names[a]} and {names[b]}: {most} test images of one were taken for the other.", "")
    return verdict(False, "", f"the model mixes up {names[a]} and {names[b]} {int(errors[a, b])} times; another pair "
                              f"is confused more often ({most} times). Count errors in both directions")
