"""Self-checks for notebook 02 (global soft attention: squeeze-and-excitation).

- ``check_1(count)``: parameters of the seed's one-layer SE (eq. 2) over the full-width ResNet-18.
- ``check_2(extra)``: parameters that ``reduction=4`` adds to the quick classification SE ResNet.
- ``check_3(accuracy, model)``: test accuracy with every SE weight fixed to its test-set mean.
- ``check_4(factor)``: how much SE after the residual addition scales the shortcut path at initialisation.

Exercise 5 (a spatial attention after SE) is open; its worked answer is in
``notebooks/solutions/02_global_soft_attention.ipynb``.
"""
from __future__ import annotations

import copy

import torch
from torch.utils.data import DataLoader

from . import PROFILE, close, course_data, is_number, number, verdict

#: the value SE's weights start near: sigmoid of a logit near 0
INITIAL_ATTENTION = 0.5


def _se_modules(model: torch.nn.Module) -> list:
    from ..layers import SqueezeExcite

    return [m for m in model.modules() if isinstance(m, SqueezeExcite)]


def check_1(count) -> bool:
    """Exercise 1: parameters of a one-layer SE, A = sigmoid(W GAP(F) + b), in every block of the full-width
    ResNet-18 (exact)."""
    from .. import models

    if not is_number(count):
        return verdict(False, "", f"{count!r} is not a number; give the parameter count, e.g. 12345")
    channels = [se.channels for se in _se_modules(models.resnet18("global"))]
    expected = sum(c * c + c for c in channels)
    bottleneck = sum(p.numel() for se in _se_modules(models.resnet18("global")) for p in se.parameters())
    if close(count, expected, rel=0):
        return verdict(True, f"sum of C^2 + C over the {len(channels)} blocks (C = "
                             f"{', '.join(map(str, channels))}) = {expected:,}, about {expected / bottleneck:.0f} times "
                             f"the bottleneck's {bottleneck:,}.", "")
    one_per_stage = sum(c * c + c for c in dict.fromkeys(channels))
    if close(count, channels[0] ** 2 + channels[0], rel=0):
        why = (f"{number(count)} is one block's; the network has {len(channels)} SE blocks of different widths "
               f"({', '.join(map(str, channels))} channels)")
    elif close(count, one_per_stage, rel=0):
        why = f"{number(count)} counts one block per stage; each stage has {len(channels) // len(set(channels))}"
    elif close(count, sum(c * c for c in channels), rel=0):
        why = f"{number(count)} leaves out the biases: b has C entries in each block"
    elif close(count, bottleneck, rel=0):
        why = f"{number(count)} is the bottleneck SE's count; the exercise asks for one C x C layer per block"
    else:
        why = f"{number(count)} is off; add C^2 (W) + C (b) over the blocks' widths"
    return verdict(False, "", why)


def _quick_se_params(reduction: int) -> int:
    from .. import models, profiles

    kwargs = profiles.get_profile(PROFILE).model_kwargs("classification")
    model = models.resnet18("global", 10, **kwargs, reduction=reduction)
    return sum(p.numel() for p in model.parameters())


def check_2(extra) -> bool:
    """Exercise 2: parameters of the quick classification SE ResNet at reduction 4 minus at 16 (exact)."""
    if not is_number(extra):
        return verdict(False, "", f"{extra!r} is not a number; give the difference in parameters, e.g. 1000")
    r4, r16, r32 = (_quick_se_params(r) for r in (4, 16, 32))
    expected = r4 - r16
    if close(extra, expected, rel=0):
        return verdict(True, f"{r4:,} - {r16:,} = {expected:,}. Only the wider blocks gain: SE keeps at least 8 hidden "
                             f"units, so at reduction 16 every block already has 8 (and reduction 32 changes nothing: "
                             f"{r32 - r16} parameters).", "")
    if close(extra, r4, rel=0):
        why = f"{number(extra)} is the whole reduction-4 model's count; subtract the default's (reduction 16)"
    elif close(extra, -expected, rel=0):
        why = "the sign: reduction 4 keeps more hidden units than 16, so it has more parameters"
    elif close(extra, 0, abs_tol=0):
        why = ("0 is what reduction 32 adds to 16 (both hit the 8-unit minimum here); reduction 4 gives the wider "
               "blocks more hidden units")
    else:
        why = f"{number(extra)} is off; count sum(p.numel() for p in model.parameters()) for both models and subtract"
    return verdict(False, "", why)


def _batches(dataset, batch_size: int = 200):
    return DataLoader(dataset, batch_size=batch_size)


def mean_attention(model: torch.nn.Module, dataset) -> dict[str, torch.Tensor]:
    """Each SE module's weights averaged over ``dataset``: ``{module name: (C,)}``."""
    from .. import layers

    sums, count = {}, 0
    for x, _ in _batches(dataset):
        for name, kinds in layers.collect_attention(model, x.to(next(model.parameters()).device)).items():
            sums[name] = sums.get(name, 0) + kinds["se"].sum(0)
        count += len(x)
    return {name: total / count for name, total in sums.items()}


def accuracy_with_fixed_attention(model: torch.nn.Module, data) -> float:
    """Test accuracy of a copy of ``model`` whose SE weights are fixed to their mean over the test split."""
    from .. import engine

    means = mean_attention(model, data.test)
    fixed = copy.deepcopy(model)
    modules = dict(fixed.named_modules())
    for name, mean in means.items():
        scale = mean.to(next(fixed.parameters()).device)
        modules[name].register_forward_hook(
            lambda module, inputs, output, a=scale: inputs[0] * a.reshape(1, -1, *([1] * (inputs[0].dim() - 2))))
    device = next(model.parameters()).device
    return float(engine.evaluate(fixed, data.test, "classification", device=device)["accuracy"])


def check_3(accuracy, model, data=None) -> bool:
    """Exercise 3: test accuracy of ``model`` with each SE weight fixed to its mean over the test split
    (within 0.003, three test images in a thousand). ``data``: the run's data (``runs["classification"].data``); the quick profile's by default."""
    from .. import engine

    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.9")
    data = course_data(data)
    expected = accuracy_with_fixed_attention(model, data)
    as_trained = float(engine.evaluate(copy.deepcopy(model), data.test, "classification",
                                       device=next(model.parameters()).device)["accuracy"])
    if close(accuracy, expected, rel=0, abs_tol=0.003):
        return verdict(True, f"{expected:.3f} with fixed scales against {as_trained:.3f} as trained: what the gap "
                             "costs is SE's input-dependent part.", "")
    if close(accuracy, as_trained, rel=0, abs_tol=0.002):
        why = (f"{number(accuracy)} is the accuracy as trained; fix each SE's output to x * mean(A) "
               "(a forward hook on every SqueezeExcite) before evaluating")
    else:
        why = (f"{number(accuracy)} is off; average each SE's weights over the whole test split, make the SE return "
               "its input times that mean, and evaluate on the test split")
    return verdict(False, "", why)


def check_4(factor) -> bool:
    """Exercise 4: the factor by which SE after the addition, with every weight at 0.5, scales a signal that
    only follows the shortcuts through the quick classification network (within 1%)."""
    from .. import models, profiles

    if not is_number(factor):
        return verdict(False, "", f"{factor!r} is not a number; give the factor, e.g. 0.25")
    kwargs = profiles.get_profile(PROFILE).model_kwargs("classification")
    blocks = len(_se_modules(models.resnet18("global", 10, **kwargs, attention_position="after_add")))
    expected = INITIAL_ATTENTION ** blocks
    if close(factor, expected, rel=0.01):
        return verdict(True, f"0.5^{blocks} = {expected:.4f}: after the addition SE halves the shortcut in every block, "
                             "so at initialisation the shortcuts carry about 1/{:.0f} of the signal (and of the "
                             "gradient back) through the network.".format(1 / expected), "")
    if close(factor, 1.0, rel=0.01):
        why = "1 is SE before the addition, where the shortcut is never scaled; here SE scales the sum"
    elif close(factor, INITIAL_ATTENTION, rel=0.01):
        why = f"0.5 is one block; the signal passes through all {blocks} blocks"
    else:
        why = f"{number(factor)} is off; each of the network's blocks multiplies the sum, shortcut included, by 0.5"
    return verdict(False, "", why)
