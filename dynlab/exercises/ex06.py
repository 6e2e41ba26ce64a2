"""Self-checks for notebook 06 (ODConv: omni-dimensional dynamic convolution).

- ``check_1(unit_name, model)``: the unit of a trained ODConv 4x whose kernel attention varies most between images.
- ``check_2(attention, model, unit_name)``: which of the spatial, input-channel and output-channel attentions
  changes a trained unit's output most when it is fixed to its mean over the images.
- ``check_3(macs)``: the MACs of one ``odconv4x`` unit, counted by hand.
- ``check_4(ratio)``: ``FlopCounterMode``'s count of a static unit divided by ``dynlab.flops.cost``'s MACs.
- ``check_5(accuracy, model)``: the test accuracy of a trained ODConv at temperature 30.
- ``check_6(attention_norm)``: which trunk (with or without BatchNorm) treats each input on its own in training.

Checks leave the models handed in as they were (they work on copies) and the random state untouched.
Measured answers on a trained model are compared on the same test images as the notebook's: the first
16 test images (exercises 1 and 2) or the whole test split (exercise 5) of ``data``, the quick
profile's classification data unless the run's own is given.
"""
from __future__ import annotations

import copy

import torch

from . import close, course_data, is_number, number, verdict

#: exercises 1 and 2 look at the notebook's 16 first test images
IMAGES = 16
#: exercise 2: the heads of the attentions it fixes
HEADS = {"spatial": "spatial_fc", "channel": "channel_fc", "filter": "filter_fc"}
#: exercises 3 and 4's unit and input
COUNTED_UNIT = (64, 64, 3)
COUNTED_INPUT = (1, 64, 56, 56)
#: exercise 5
HOT = 30.0
#: exercise 6's units and batch
NORM_UNIT = (32, 32, 3)
NORM_BATCH = (8, 32, 8, 8)
NORMS = ("batch", "none")


def _first_images(data) -> torch.Tensor:
    return torch.stack([data.test[i][0] for i in range(IMAGES)])


def kernel_attention_spread(model: torch.nn.Module, data=None) -> dict[str, float]:
    """Per unit with a kernel attention: its spread across the first 16 test images (std over the
    images, averaged over the K kernels)."""
    from .. import layers

    attention = layers.collect_attention(model, _first_images(course_data(data)))
    return {name: float(kinds["kernel"].std(0).mean()) for name, kinds in attention.items() if "kernel" in kinds}


def check_1(unit_name, model, data=None) -> bool:
    """Exercise 1: the unit of ``model`` (ODConv 4x) whose kernel attention spreads most across the 16 images."""
    spreads = kernel_attention_spread(model, data)
    if not spreads:
        return verdict(False, "", "this model has no kernel attention: pass ODConv 4x (run4x.model), not 1x")
    best = max(spreads, key=spreads.get)
    if unit_name == best:
        low = min(spreads, key=spreads.get)
        return verdict(True, f"{best}: spread {spreads[best]:.3f}, against {spreads[low]:.3f} in {low}. The kernel "
                             "attention is a softmax over 4 kernels, so a spread of a few hundredths means every image "
                             "still gets a mixture close to the others'.", "")
    if not isinstance(unit_name, str):
        return verdict(False, "", f"{unit_name!r} is not a unit name; give one of the names collect_attention returns, "
                                  "e.g. 'layer1.0.conv1'")
    if unit_name not in spreads:
        return verdict(False, "", f"{unit_name!r} is not a unit of this model with a kernel attention "
                                  f"({len(spreads)} are, from {next(iter(spreads))} to {list(spreads)[-1]})")
    return verdict(False, "", f"{unit_name}'s spread is {spreads[unit_name]:.3f}; another unit's is larger "
                              "(std over the 16 images, then the mean over the 4 kernels)")


def _unit_input(model: torch.nn.Module, unit: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = unit.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0]


def attention_fixing_effect(model: torch.nn.Module, unit_name: str, data=None) -> dict[str, float]:
    """For each of the spatial, input-channel and output-channel attentions of unit ``unit_name``: the
    relative change ||y' - y|| / ||y|| of its output on the first 16 test images when that attention is
    fixed to its mean over those images (in a copy of the unit: head weight 0, bias T logit(mean))."""
    from .. import layers

    unit = dict(model.named_modules())[unit_name]
    x = _first_images(course_data(data))
    features = _unit_input(model, unit, x)
    means = {kind: value.mean(0) for kind, value in layers.collect_attention(model, x)[unit_name].items()}
    reference = copy.deepcopy(unit).eval()
    with torch.no_grad():
        y = reference(features)
        effects = {}
        for kind, head in HEADS.items():
            fixed = copy.deepcopy(unit).eval()
            layer = getattr(fixed.attention, head)
            if layer is None:
                continue
            layer.weight.zero_()
            layer.bias.copy_(fixed.temperature * torch.logit(means[kind]))
            effects[kind] = float((fixed(features) - y).norm() / y.norm())
    return effects


def check_2(attention, model, unit_name, data=None) -> bool:
    """Exercise 2: which attention, "spatial", "channel" or "filter", changes unit ``unit_name``'s output most
    when fixed to its mean over the first 16 test images (relative change of the output on those images)."""
    from ..layers import ODConv

    unit = dict(model.named_modules()).get(unit_name) if isinstance(unit_name, str) else None
    if not isinstance(unit, ODConv):
        return verdict(False, "", f"{unit_name!r} is not an ODConv unit of this model; use the notebook's `name`")
    effects = attention_fixing_effect(model, unit_name, data)
    largest = max(effects, key=effects.get)
    listed = ", ".join(f"{kind} {effect:.1%}" for kind, effect in effects.items())
    if attention == largest:
        return verdict(True, f"{largest} (relative change of the output with each attention fixed to its mean: "
                             f"{listed}). What changes from image to image in that attention matters most here; an "
                             "attention whose mean does almost as well is nearly a static rescaling.", "")
    if not isinstance(attention, str) or attention not in effects:
        return verdict(False, "", f"{attention!r} is none of {', '.join(repr(k) for k in effects)}")
    return verdict(False, "", f"fixing {attention} to its mean changes the output by {effects[attention]:.1%}; "
                              "another attention changes it more (measure ||y' - y|| / ||y|| for each)")


def unit_macs():
    """Exercise 3's unit counted by ``dynlab.flops.cost``, and its parts by hand:
    (cost, convolution, feature-map attentions, kernel aggregation + spatial, attention branch)."""
    from .. import flops, layers

    c_in, c_out, k = COUNTED_UNIT
    unit = layers.build("odconv4x", c_in, c_out, k, padding=1)
    total = flops.cost(unit, COUNTED_INPUT)
    positions = COUNTED_INPUT[2] * COUNTED_INPUT[3]
    convolution = positions * c_out * c_in * k * k
    feature_maps = positions * (c_in + c_out)
    weights = 2 * unit.kernels * c_out * c_in * k * k
    branch = sum(layer.in_features * layer.out_features for layer in unit.attention.modules()
                 if isinstance(layer, torch.nn.Linear))
    return total, convolution, feature_maps, weights, branch


def check_3(macs) -> bool:
    """Exercise 3: MACs of ``layers.build("odconv4x", 64, 64, 3, padding=1)`` on a (1, 64, 56, 56) input (exact)."""
    if not is_number(macs):
        return verdict(False, "", f"{macs!r} is not a number; give the MACs, e.g. 1000000")
    total, convolution, feature_maps, weights, branch = unit_macs()
    if close(macs, total.macs, rel=0):
        return verdict(True, f"{convolution:,} (convolution) + {feature_maps:,} (alpha_c on the input, alpha_f on the "
                             f"output) + {weights:,} (kernel aggregation and alpha_s, one MAC per weight and kernel "
                             f"each) + {branch:,} (attention branch) = {total.macs:,}, "
                             f"{100 * (total.macs / convolution - 1):.2f}% over the convolution alone.", "")
    if close(macs, convolution, rel=0):
        why = f"{number(macs)} is the convolution alone; add the attentions' work and the attention branch"
    elif close(macs, total.flops, rel=0):
        why = f"{number(macs)} is FLOPs (2 per MAC); give MACs"
    elif close(macs, 4 * convolution, rel=0.01):
        why = f"{number(macs)} convolves 4 times; ODConv aggregates the kernels first and convolves once"
    elif close(macs, total.macs - branch, rel=0):
        why = f"{number(macs)} leaves out the attention branch (the trunk and the four heads)"
    elif close(macs, total.macs - feature_maps, rel=0) or close(macs, total.macs - feature_maps // 2, rel=0):
        why = f"{number(macs)} leaves out alpha_c or alpha_f: one MAC per element of the map each scales"
    elif close(macs, total.macs - weights // 2, rel=0):
        why = (f"{number(macs)} counts only one of the kernel aggregation and alpha_s: each is one MAC per weight "
               "and kernel")
    else:
        why = (f"{number(macs)} is off; add the convolution, alpha_c and alpha_f on the maps, the aggregation and "
               "alpha_s on the 4 kernels, and the branch's linear layers")
    return verdict(False, "", why)


def counter_ratio() -> tuple[float, int, int]:
    """(ratio, FlopCounterMode's total, flops.cost's MACs) for exercise 4's static unit."""
    from torch.utils.flop_counter import FlopCounterMode

    from .. import flops, layers

    unit = layers.build("base", *COUNTED_UNIT, padding=1).eval()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = torch.randn(*COUNTED_INPUT)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unit(x)
    counted, macs = counter.get_total_flops(), flops.cost(unit, COUNTED_INPUT).macs
    return counted / macs, counted, macs


def check_4(ratio) -> bool:
    """Exercise 4: FlopCounterMode's total for a static 64 -> 64 3x3 unit on 56x56, divided by its MACs (within 1%)."""
    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give FlopCounterMode's total / flops.cost's MACs")
    expected, counted, macs = counter_ratio()
    if close(ratio, expected, rel=0.01):
        return verdict(True, f"{counted:,} / {macs:,} = {expected:g}: FlopCounterMode counts FLOPs, and one "
                             "multiply-accumulate is two floating-point operations.", "")
    if close(ratio, 1 / expected, rel=0.01):
        why = f"{number(ratio)} is the inverse: divide FlopCounterMode's total by flops.cost's MACs"
    elif close(ratio, 1, rel=0.01):
        why = "the two numbers are not equal: one counter gives FLOPs, the other MACs"
    else:
        why = f"{number(ratio)} is off; compare counter.get_total_flops() with flops.cost(unit, {COUNTED_INPUT}).macs"
    return verdict(False, "", why)


def accuracy_at(model: torch.nn.Module, temperature: float, data=None) -> float:
    """Test accuracy of a copy of ``model`` at ``temperature``."""
    from .. import engine, layers

    hot = copy.deepcopy(model)
    layers.set_temperature(hot, temperature)
    return float(engine.evaluate(hot, course_data(data).test, "classification", device="cpu")["accuracy"])


def check_5(accuracy, model, data=None) -> bool:
    """Exercise 5: test accuracy of the trained ``model`` at temperature 30 (within 0.003, three images in 1,000)."""
    from .. import engine

    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.9")
    hot = accuracy_at(model, HOT, data)
    as_trained = float(engine.evaluate(copy.deepcopy(model), course_data(data).test, "classification",
                                       device="cpu")["accuracy"])
    if close(accuracy, hot, rel=0, abs_tol=0.003):
        return verdict(True, f"{hot:.3f} at T = 30, {as_trained:.3f} at the model's temperature now. A larger T pulls "
                             "every sigmoid towards 0.5, so the attention hardly depends on the image any more: what "
                             "the accuracy loses is what the network drew from it.", "")
    if close(accuracy, as_trained, rel=0, abs_tol=0.003):
        why = (f"{number(accuracy)} is the accuracy at the model's current temperature; set "
               "layers.set_temperature(model, 30) first")
    else:
        why = (f"{number(accuracy)} is off; set the temperature to 30 and evaluate on the whole test split "
               "(engine.evaluate(model, data.test, 'classification')['accuracy'])")
    return verdict(False, "", why)


def batch_dependence() -> dict[str, float]:
    """Per ``attention_norm``: the largest difference, in training mode, between a unit's output for the
    first 2 inputs of a batch of 8 and its output for those 2 fed alone."""
    from .. import layers

    differences = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = torch.randn(*NORM_BATCH)
        for norm in NORMS:
            unit = layers.build("odconv", *NORM_UNIT, padding=1, attention_norm=norm).train()
            with torch.no_grad():
                differences[norm] = float((unit(x)[:2] - unit(x[:2])).abs().max())
    return differences


def check_6(attention_norm) -> bool:
    """Exercise 6: the ``attention_norm`` ("batch" or "none") whose unit gives two inputs the same output
    alone and inside a larger batch, in training mode."""
    if not isinstance(attention_norm, str) or attention_norm not in NORMS:
        return verdict(False, "", f"{attention_norm!r} is not an attention_norm; give 'batch' or 'none'")
    differences = batch_dependence()
    independent = [norm for norm, difference in differences.items() if difference < 1e-5]
    if attention_norm in independent:
        return verdict(True, f"attention_norm={attention_norm!r}: the same output both times (difference "
                             f"{differences[attention_norm]:.1e}), while with the BatchNorm it moves by "
                             f"{differences['batch']:.2f}. In training a BatchNorm normalises with the batch's own "
                             "mean and variance, so each input's attention depends on the others in its batch.", "")
    return verdict(False, "", f"with attention_norm={attention_norm!r} the two outputs differ by "
                              f"{differences[attention_norm]:.2f}: the trunk's BatchNorm uses the batch's "
                              "statistics in training mode")
