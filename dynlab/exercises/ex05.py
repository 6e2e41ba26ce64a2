"""Self-checks for notebook 05 (dynamic convolution: attention over kernels).

- ``check_1(ratio)``: how much wider the kernel attention spreads across images at T = 1 than at T = 30.
- ``check_2(params, macs)``: parameters and MACs of the quick classification ResNet-18 with K = 8 kernels.
- ``check_3(share, model)``: the share of saturated CondConv routing weights of a trained model.
- ``check_4(macs)``: the MACs of one ``dyconv`` unit, counted by hand.
- ``check_5(ratio)``: the MACs of the quick classification network with pixel-wise mixing (``local``) over
  those with image-wise mixing (``dyconv``).

The arguments the exercises also ask for have worked answers in
``notebooks/solutions/05_dynamic_convolution.ipynb``. Checks leave the random state and the models
handed in as they were.
"""
from __future__ import annotations

import torch

from . import PROFILE, close, is_number, number, verdict

#: exercise 1's unit and batch: a 16-channel 3x3 unit, 32 random inputs of 8x8, drawn after manual_seed(0)
SPREAD_UNIT = (16, 16, 3)
SPREAD_BATCH = (32, 16, 8, 8)
#: exercise 2's network (the quick classification model's shape: width 16, 10 classes, 64x64 inputs)
NETWORK = {"num_classes": 10, "width": 16}
NETWORK_INPUT = (1, 3, 64, 64)
#: exercise 3: a routing weight this close to 0 or to 1 counts as saturated; the first 64 test images
SATURATION_MARGIN = 0.1
SATURATION_IMAGES = 64
#: exercise 4's unit and input
COUNTED_UNIT = (64, 64, 3)
COUNTED_INPUT = (1, 64, 32, 32)


def attention_spread(temperature: float) -> float:
    """Exercise 1's measurement: the spread (std across the batch, averaged over the K kernels) of the
    kernel attention of a fresh ``dyconv`` unit at ``temperature``, built and fed after ``manual_seed(0)``."""
    from .. import layers

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unit = layers.build("dyconv", *SPREAD_UNIT, padding=1).eval()
        x = torch.randn(*SPREAD_BATCH)
    layers.set_temperature(unit, temperature)
    return float(layers.collect_attention(unit, x)[""]["kernel"].std(0).mean())


def check_1(ratio) -> bool:
    """Exercise 1: spread of the kernel attention at T = 1 divided by its spread at T = 30 (within 0.5%)."""
    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give spread at T = 1 / spread at T = 30, e.g. 10")
    at_1, at_30 = attention_spread(1.0), attention_spread(30.0)
    expected = at_1 / at_30
    if close(ratio, expected, rel=0.005):
        return verdict(True, f"{at_1:.4f} / {at_30:.5f} = {expected:.1f}. Small logits z make softmax(z / T) about "
                             "1/K + (z - mean z) / (K T): the differences between images shrink like 1/T, so at "
                             "T = 30 every image gets nearly the same uniform mixture.", "")
    if close(ratio, 1 / expected, rel=0.005):
        why = f"{number(ratio)} is the inverse: divide the spread at T = 1 by the spread at T = 30"
    elif close(ratio, 30, rel=0.0) or close(ratio, 1 / 30, rel=0.0):
        why = f"{number(ratio)} is the ratio of the temperatures; measure the spreads, as the exercise describes"
    else:
        why = (f"{number(ratio)} is off; after torch.manual_seed(0) build the unit, draw x = torch.randn"
               f"{SPREAD_BATCH}, and compare pi.std(0).mean() at T = 1 and T = 30")
    return verdict(False, "", why)


def network_cost(kernels: int):
    """``dynlab.flops.cost`` of exercise 2's ResNet-18 with ``kernels`` kernels per ``dyconv`` unit."""
    from .. import flops, models

    return flops.cost(models.resnet18("dyconv", kernels=kernels, **NETWORK), NETWORK_INPUT)


def check_2(params, macs) -> bool:
    """Exercise 2: parameters and MACs per image of the quick classification model with K = 8 (exact)."""
    if not (is_number(params) and is_number(macs)):
        return verdict(False, "", f"give two numbers, the parameters and the MACs; got {params!r} and {macs!r}")
    eight, four = network_cost(8), network_cost(4)
    if close(params, eight.params, rel=0) and close(macs, eight.macs, rel=0):
        return verdict(True, f"{eight.params:,} parameters ({eight.params / four.params:.2f} x K = 4's) and "
                             f"{eight.macs:,} MACs ({eight.macs / four.macs:.2f} x). Each extra kernel adds a full set "
                             "of weights, but the convolution still runs once per image: only the mixing (K MACs "
                             "per weight) and the attention's last layer grow.", "")
    if close(params, four.params, rel=0) or close(macs, four.macs, rel=0):
        why = "that is K = 4's count (the default); build the model with kernels=8"
    elif close(macs, eight.flops, rel=0):
        why = f"{number(macs)} is FLOPs (2 per MAC); cost(...).macs is the number asked for"
    elif close(params, eight.macs, rel=0) and close(macs, eight.params, rel=0):
        why = "the two numbers are swapped: parameters first, then MACs"
    elif close(params, eight.params, rel=0):
        why = f"the parameters are right; {number(macs)} MACs is off (flops.cost(model, {NETWORK_INPUT}).macs)"
    elif close(macs, eight.macs, rel=0):
        why = f"the MACs are right; {number(params)} parameters is off (flops.cost(...).params)"
    else:
        why = (f"{number(params)} and {number(macs)} are off; count resnet18('dyconv', 10, width=16, kernels=8) "
               f"with flops.cost(model, {NETWORK_INPUT})")
    return verdict(False, "", why)


def saturated_share(model: torch.nn.Module, data=None) -> tuple[float, float]:
    """(share of routing weights within ``SATURATION_MARGIN`` of 0 or 1, their mean) over every unit of
    ``model`` on the first ``SATURATION_IMAGES`` test images of ``data`` (the quick classification data by default)."""
    from .. import experiments, layers

    if data is None:
        data = experiments.load_data("classification", "synthetic", PROFILE, limit=SATURATION_IMAGES)
    x = torch.stack([data.test[i][0] for i in range(SATURATION_IMAGES)])
    weights = torch.cat([kinds["kernel"].flatten() for kinds in layers.collect_attention(model, x).values()
                         if "kernel" in kinds])
    saturated = (weights < SATURATION_MARGIN) | (weights > 1 - SATURATION_MARGIN)
    return float(saturated.float().mean()), float(weights.mean())


def check_3(share, model, data=None) -> bool:
    """Exercise 3: share of CondConv routing weights below 0.1 or above 0.9, over every unit and the first
    64 test images (within 0.01). ``model``: the trained CondConv network; ``data``: its data (quick by default)."""
    from ..layers import DynamicConv

    if not is_number(share):
        return verdict(False, "", f"{share!r} is not a number; give the share as a fraction, e.g. 0.25")
    units = [m for m in model.modules() if isinstance(m, DynamicConv)]
    if not units or any(unit.routing != "sigmoid" for unit in units):
        return verdict(False, "", "this model's units are not CondConv's: build it with routing='sigmoid'")
    expected, mean = saturated_share(model, data)
    if close(share, expected, rel=0, abs_tol=0.01):
        return verdict(True, f"{expected:.3f} of the routing weights are within {SATURATION_MARGIN} of 0 or 1 "
                             f"(their mean: {mean:.2f}). Sigmoid routing has no temperature and no sum-to-one "
                             "constraint: nothing keeps a weight from 0 or 1, and nothing pushes it there.", "")
    if close(share, 1 - expected, rel=0, abs_tol=0.01):
        why = f"{number(share)} is the share of weights that are not saturated; count those below 0.1 or above 0.9"
    elif close(share, mean, rel=0, abs_tol=0.01):
        why = f"{number(share)} is the mean routing weight; the exercise asks for the share near 0 or 1"
    else:
        why = (f"{number(share)} is off; collect the 'kernel' attention of every unit on the first "
               f"{SATURATION_IMAGES} test images and count the weights below 0.1 or above 0.9")
    return verdict(False, "", why)


def unit_cost():
    """Exercise 4's unit counted by ``dynlab.flops.cost``, and its parts by hand:
    (cost, K, convolution, mixing, attention)."""
    from .. import flops, layers

    c_in, c_out, k = COUNTED_UNIT
    unit = layers.build("dyconv", c_in, c_out, k, padding=1)
    total = flops.cost(unit, COUNTED_INPUT)
    positions = COUNTED_INPUT[2] * COUNTED_INPUT[3]
    convolution = positions * c_out * c_in * k * k
    mixing = unit.kernels * c_out * c_in * k * k
    attention = unit.attention_hidden.in_features * unit.attention_hidden.out_features \
        + unit.attention_logits.in_features * unit.attention_logits.out_features
    return total, unit.kernels, convolution, mixing, attention


def check_4(macs) -> bool:
    """Exercise 4: MACs of ``layers.build("dyconv", 64, 64, 3, padding=1)`` on a (1, 64, 32, 32) input (exact)."""
    if not is_number(macs):
        return verdict(False, "", f"{macs!r} is not a number; give the MACs, e.g. 1000000")
    total, kernels, convolution, mixing, attention = unit_cost()
    if close(macs, total.macs, rel=0):
        return verdict(True, f"{convolution:,} (the convolution, once, with the mixed kernel) + {mixing:,} (mixing "
                             f"{kernels} kernels) + {attention:,} (the attention's two layers) = {total.macs:,}: "
                             f"{100 * (total.macs / convolution - 1):.1f}% more than a static convolution.", "")
    if close(macs, convolution, rel=0):
        why = f"{number(macs)} is the convolution alone; add the kernel mixing and the attention branch"
    elif close(macs, kernels * convolution, rel=0) or close(macs, kernels * convolution + mixing + attention, rel=0):
        why = (f"{number(macs)} runs the convolution {kernels} times; dynamic convolution mixes the kernels first "
               "and convolves once")
    elif close(macs, total.flops, rel=0):
        why = f"{number(macs)} is FLOPs (2 per MAC); give MACs"
    elif close(macs, convolution + mixing, rel=0):
        why = f"{number(macs)} leaves out the attention branch (GAP -> 64 x 16 -> 16 x 4)"
    elif close(macs, convolution + attention, rel=0):
        why = f"{number(macs)} leaves out the mixing: K MACs per kernel weight"
    else:
        why = (f"{number(macs)} is off; add the convolution (positions x C_out x C_in x k x k), the mixing "
               "(K x C_out x C_in x k x k) and the attention's two linear layers")
    return verdict(False, "", why)


def mixing_ratio() -> tuple[float, int, int]:
    """(local's MACs / dyconv's, local's, dyconv's) for exercise 2's network (width 16, 64x64 inputs)."""
    from .. import flops, models

    local, dyconv = (flops.cost(models.resnet18(variant, **NETWORK), NETWORK_INPUT).macs
                     for variant in ("local", "dyconv"))
    return local / dyconv, local, dyconv


def check_5(ratio) -> bool:
    """Exercise 5: MACs of ``resnet18("local", 10, width=16)`` over those of ``resnet18("dyconv", 10, width=16)``,
    per 64x64 image (within 1%)."""
    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give local's MACs / dyconv's MACs, e.g. 1.5")
    expected, local, dyconv = mixing_ratio()
    if close(ratio, expected, rel=0.01):
        return verdict(True, f"{local:,} / {dyconv:,} = {expected:.2f}. With one attention per image the K kernels "
                             "are mixed first and convolved once (convolution is linear in the kernel); with an "
                             "attention per position they cannot be, so every block convolution runs K times.", "")
    if close(ratio, 1 / expected, rel=0.01):
        why = f"{number(ratio)} is the inverse: divide local's MACs by dyconv's"
    elif close(ratio, 4, rel=0.01):
        why = ("4 is the ratio of the block convolutions alone; the stem, the downsample convolutions and the "
               "classifier are the same in both, and dyconv's mixing costs something too: count the whole networks")
    else:
        why = (f"{number(ratio)} is off; count both networks with flops.cost(model, {NETWORK_INPUT}).macs "
               "and divide")
    return verdict(False, "", why)
