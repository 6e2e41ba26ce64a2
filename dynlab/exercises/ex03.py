"""Self-checks for notebook 03 (local soft attention: a pixel-wise mixture of kernels).

- ``check_1(without_representation, without_pixel, model)``: test accuracies with one part of the logits removed.
- ``check_2(accuracies, model)``: test accuracies at temperatures 0.1, 1 and 30.
- ``check_3(macs)``: MACs of the quick classification network with ``kernels=8``.
- ``check_4(ratio)``: MACs of the quick classification network, ``local`` / ``dyconv``.
- ``check_5(macs)``: MACs of one ``local`` unit, 64 -> 64 channels, 3x3, on a 32x32 map.

Checks that evaluate a model work on a copy: the model handed in is left as it was.
"""
from __future__ import annotations

import copy

import torch

from . import PROFILE, close, course_data, is_number, number, verdict

#: the temperatures exercise 2 asks about
TEMPERATURES = (0.1, 1.0, 30.0)
#: how far a measured test accuracy may be from the check's (three test images in a thousand)
TOLERANCE = 0.003


def _accuracy(model: torch.nn.Module, data) -> float:
    from .. import engine

    return float(engine.evaluate(model, data.test, "classification", device=next(model.parameters()).device)["accuracy"])


def _local_units(model: torch.nn.Module) -> list:
    from ..layers import PixelMixtureConv

    return [m for m in model.modules() if isinstance(m, PixelMixtureConv)]


def accuracy_without(model: torch.nn.Module, part: str, data) -> float:
    """Test accuracy of a copy of ``model`` whose ``part`` (``"representation_logits"``, U, or
    ``"pixel_logits"``, the 1x1 convolution) has its weights set to zero in every ``local`` unit."""
    ablated = copy.deepcopy(model)
    with torch.no_grad():
        for unit in _local_units(ablated):
            getattr(unit, part).weight.zero_()
    return _accuracy(ablated, data)


def check_1(without_representation, without_pixel, model, data=None) -> bool:
    """Exercise 1: test accuracies with U r removed, then with the 1x1 convolution's weights removed (within 0.003
    each). ``data``: the run's data (``runs["classification"].data``); the quick profile's by default."""
    if not (is_number(without_representation) and is_number(without_pixel)):
        return verdict(False, "", "give two accuracies as fractions, e.g. check_1(0.9, 0.5, model)")
    data = course_data(data)
    no_u = accuracy_without(model, "representation_logits", data)
    no_pixel = accuracy_without(model, "pixel_logits", data)
    first, second = close(without_representation, no_u, rel=0, abs_tol=TOLERANCE), \
        close(without_pixel, no_pixel, rel=0, abs_tol=TOLERANCE)
    if first and second:
        relies = "the 1x1 convolution (the pixel part)" if no_pixel < no_u else "the kernel representation (U r)"
        return verdict(True, f"{no_u:.3f} without U r, {no_pixel:.3f} without the 1x1 convolution: the model relies "
                             f"more on {relies}.", "")
    if close(without_representation, no_pixel, rel=0, abs_tol=TOLERANCE) and \
            close(without_pixel, no_u, rel=0, abs_tol=TOLERANCE):
        return verdict(False, "", "the two are swapped: the first is with representation_logits.weight zeroed")
    wrong = "the first (representation_logits.weight zeroed)" if not first else \
        "the second (pixel_logits.weight zeroed)"
    return verdict(False, "", f"{wrong} is off; zero that weight in every local unit of a copy of the trained model, "
                              "restore the other, and evaluate on the test split")


def accuracies_at(model: torch.nn.Module, data, temperatures=TEMPERATURES) -> dict[float, float]:
    """Test accuracy of a copy of ``model`` at each temperature."""
    from .. import layers

    scaled = copy.deepcopy(model)
    result = {}
    for t in temperatures:
        layers.set_temperature(scaled, t)
        result[t] = _accuracy(scaled, data)
    return result


def _by_temperature(answer) -> dict[float, float] | None:
    try:
        given = {float(t): float(a) for t, a in dict(answer).items()}
    except (TypeError, ValueError):
        return None
    return given if set(given) >= set(TEMPERATURES) else None


def check_2(accuracies, model, data=None) -> bool:
    """Exercise 2: ``{0.1: accuracy, 1: accuracy, 30: accuracy}``, the test accuracy at each temperature (within
    0.003 each). ``data``: the run's data; the quick profile's by default."""
    given = _by_temperature(accuracies)
    if given is None:
        return verdict(False, "", "give a dict from temperature to test accuracy, e.g. {0.1: 0.9, 1: 0.9, 30: 0.5}")
    expected = accuracies_at(model, course_data(data))
    off = [t for t in TEMPERATURES if not close(given[t], expected[t], rel=0, abs_tol=TOLERANCE)]
    if not off:
        text = ", ".join(f"T = {t:g}: {a:.3f}" for t, a in expected.items())
        return verdict(True, f"{text}. As T -> 0 each pixel takes its strongest kernel alone (a hard choice); as T "
                             "grows the four kernels are averaged, one static kernel everywhere.", "")
    return verdict(False, "", f"at T = {', '.join(f'{t:g}' for t in off)} the accuracy is off; set the temperature "
                              "with layers.set_temperature(model, t) before each evaluation on the test split")


def _quick_model(variant: str, **unit_options) -> torch.nn.Module:
    from .. import experiments

    data = experiments.load_data("classification", "synthetic", PROFILE, limit=1)
    return experiments.build_model(variant, "classification", data, PROFILE, **unit_options)


def _macs(model: torch.nn.Module) -> int:
    from .. import flops

    return flops.cost(model, (1, 3, 64, 64)).macs


def check_3(macs) -> bool:
    """Exercise 3: MACs of the quick classification ``local`` network with 8 kernels per unit, one 64x64 image
    (within 0.5%)."""
    if not is_number(macs):
        return verdict(False, "", f"{macs!r} is not a number; give the MACs as one number, e.g. 5e7")
    k8, k4, base = _macs(_quick_model("local", kernels=8)), _macs(_quick_model("local")), _macs(_quick_model("base"))
    if close(macs, k8, rel=0.005):
        return verdict(True, f"{k8:,} MACs with 8 kernels, {k4:,} with 4, {base:,} for base: the block convolutions "
                             "grow with K, the stem, shortcuts and classifier do not.", "")
    if close(macs, k4, rel=0.005):
        why = f"{number(macs)} is the default, 4 kernels; build it with kernels=8"
    elif close(macs, 2 * k4, rel=0.02):
        why = (f"{number(macs)} doubles the whole K = 4 network; only the block convolutions grow with K (and the "
               "1x1 logit convolution gains outputs): count it with flops.cost")
    elif close(macs, 2 * k8, rel=0.005):
        why = f"{number(macs)} is in FLOPs (2 per MAC); give MACs"
    else:
        why = f"{number(macs)} is off; flops.cost(model, (1, 3, 64, 64)).macs of the kernels=8 model"
    return verdict(False, "", why)


def check_4(ratio) -> bool:
    """Exercise 4: MACs of the quick classification network with ``local`` units / with ``dyconv`` units
    (within 2%)."""
    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give the ratio, e.g. 1.5")
    local, dyconv = _macs(_quick_model("local")), _macs(_quick_model("dyconv"))
    expected = local / dyconv
    if close(ratio, expected, rel=0.02):
        return verdict(True, f"{local:,} / {dyconv:,} = {expected:.2f}: local evaluates its K kernels at every "
                             "position; dyconv mixes K small kernels once per image and convolves once.", "")
    if close(ratio, 1 / expected, rel=0.02):
        why = f"{number(ratio)} is dyconv / local; give local / dyconv"
    else:
        why = f"{number(ratio)} is off; compare flops.cost(model, (1, 3, 64, 64)).macs of the two course networks"
    return verdict(False, "", why)


def check_5(macs) -> bool:
    """Exercise 5: MACs of one ``local`` unit, 64 -> 64 channels, 3x3, padding 1, on a 32x32 map, as
    ``flops.cost`` counts them (within 0.1%: the attention adds less than 1% to the four convolutions)."""
    from .. import flops, layers

    if not is_number(macs):
        return verdict(False, "", f"{macs!r} is not a number; give the MACs as one number, e.g. 1e8")
    shape = (1, 64, 32, 32)
    expected = flops.cost(layers.build("local", 64, 64, 3, padding=1), shape).macs
    conv = flops.cost(layers.build("base", 64, 64, 3, padding=1), shape).macs
    if close(macs, expected, rel=0.001):
        return verdict(True, f"{expected:,} MACs, {expected / conv:.3f} times a plain 3x3 convolution's {conv:,}.", "")
    if close(macs, 4 * conv, rel=0.0005):
        why = (f"{number(macs)} is the four convolutions alone; add the attention: the 1x1 logit convolution, V, U "
               "and mixing the four responses at every position")
    elif close(macs, conv, rel=0.001):
        why = f"{number(macs)} is one plain convolution; the unit computes K = 4 of them and mixes them"
    else:
        why = f"{number(macs)} is off; flops.cost(layers.build('local', 64, 64, 3, padding=1), (1, 64, 32, 32)).macs"
    return verdict(False, "", why)
