"""Self-checks for notebook 04 (hard attention: input-dependent gates).

- ``check_2(gradient)``: the gradient that reaches the gate network without the straight-through estimator.
- ``check_3(open_rate, model)``: the share of open gates of a trained model over the test split.
- ``check_5(accuracy, model)``: test accuracy with the gates fixed to one mask chosen on the validation split.

Exercises 1 and 4 are measurements to plot and discuss (accuracy against executed MACs, time against
MACs); their worked answers are in ``notebooks/solutions/04_hard_attention.ipynb``. Checks that change
a model work on a copy: the model handed in is left as it was.
"""
from __future__ import annotations

import copy

import torch
from torch.utils.data import DataLoader

from . import close, course_data, is_number, number, verdict

#: how far a measured share or accuracy may be from the check's (three test images in a thousand)
TOLERANCE = 0.003
#: a gate logit this large fixes the gate: sigmoid(+-10) is 0.99995 or 0.00005
FIXED_LOGIT = 10.0


def _gated_units(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    from ..layers import GatedConv

    return {name: m for name, m in model.named_modules() if isinstance(m, GatedConv)}


def gate_network_gradient_without_straight_through(seed: int = 0) -> float:
    """Total |gradient| on a library ``hard`` unit's gate network when its output is multiplied by the hard
    0/1 gates alone (no straight-through term), after one backward of the notebook's check loss."""
    from .. import layers

    torch.manual_seed(seed)
    unit = layers.build("hard", 16, 32, 3, stride=2, padding=1).train()
    with torch.no_grad():
        unit.gate_logits.bias.normal_(0.0, 2.0)
    x = torch.randn(4, 16, 12, 12)
    hard = (unit.gate_probabilities(x) > 0.5).float()
    y = unit.convolve(x) * hard[:, :, None, None]
    budget = (hard.mean() - unit.budget) ** 2
    (y.square().mean() + budget).backward()
    gate_parameters = [*unit.gate_hidden.parameters(), *unit.gate_logits.parameters()]
    return float(sum(p.grad.abs().sum() for p in gate_parameters if p.grad is not None))


def check_2(gradient) -> bool:
    """Exercise 2: the total absolute gradient on the gate network without straight-through (None counts as 0;
    within 1e-12)."""
    expected = gate_network_gradient_without_straight_through()
    value = 0.0 if gradient is None else gradient
    if not is_number(value):
        return verdict(False, "", f"{gradient!r} is not a number; give the sum of |grad| over the gate network's "
                                  "weights (None if .grad is None)")
    if close(value, expected, rel=0, abs_tol=1e-12):
        return verdict(True, f"{expected:g}: (soft > 0.5) is a step with no gradient, so autograd stops there; the "
                             "gate network would never learn, and the budget term could not move it either.", "")
    return verdict(False, "", f"{number(gradient)} is not what reaches it; with the gates = hard alone, look at "
                              "gate_logits.weight.grad after the backward (is it None?)")


def open_rate(model: torch.nn.Module, dataset) -> float:
    """The share of open gates over every gated unit, output channel and sample of ``dataset``."""
    from .. import layers

    opened = total = 0
    device = next(model.parameters()).device
    for x, _ in DataLoader(dataset, batch_size=200):
        for kinds in layers.collect_attention(model, x.to(device)).values():
            if "gates" in kinds:
                opened += float(kinds["gates"].sum())
                total += kinds["gates"].numel()
    return opened / total


def check_3(open_rate_answer, model, data=None) -> bool:
    """Exercise 3: the share of open gates of ``model`` over the test split, every gated unit's channels
    together (within 0.003). ``data``: the run's data; the quick profile's classification by default."""
    if not is_number(open_rate_answer):
        return verdict(False, "", f"{open_rate_answer!r} is not a number; give the share of open gates, e.g. 0.7")
    data = course_data(data)
    expected = open_rate(model, data.test)
    budget = {round(unit.budget, 3) for unit in _gated_units(model).values()}
    if close(open_rate_answer, expected, rel=0, abs_tol=TOLERANCE):
        return verdict(True, f"{expected:.3f} of the gates are open on the test split (the budget, when it weighs "
                             f"anything, pulls towards {', '.join(map(str, sorted(budget)))}).", "")
    if 1 < float(open_rate_answer) <= 100 and close(float(open_rate_answer) / 100, expected, rel=0, abs_tol=TOLERANCE):
        why = "give the share as a fraction, not a percentage"
    else:
        why = (f"{number(open_rate_answer)} is off; collect the gates with layers.collect_attention over the whole "
               "test split and average every 0/1 value of every unit")
    return verdict(False, "", why)


def static_mask_model(model: torch.nn.Module, data) -> torch.nn.Module:
    """A copy of ``model`` whose gates are fixed: a channel is open for every input if it was open for more
    than half of the validation images, closed otherwise."""
    from .. import layers

    counts, seen = {}, 0
    device = next(model.parameters()).device
    for x, _ in DataLoader(data.val, batch_size=200):
        for name, kinds in layers.collect_attention(model, x.to(device)).items():
            if "gates" in kinds:
                counts[name] = counts.get(name, 0) + kinds["gates"].sum(0)
        seen += len(x)
    fixed = copy.deepcopy(model)
    with torch.no_grad():
        for name, unit in _gated_units(fixed).items():
            keep = (counts[name] / seen > 0.5).to(unit.gate_logits.bias)
            unit.gate_logits.weight.zero_()
            unit.gate_logits.bias.copy_((2 * keep - 1) * FIXED_LOGIT)
    return fixed


def check_5(accuracy, model, data=None) -> bool:
    """Exercise 5: test accuracy of ``model`` with its gates fixed to the channels open for more than half of
    the validation images (within 0.003). ``data``: the run's data; the quick profile's by default."""
    from .. import engine

    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.9")
    data = course_data(data)
    device = next(model.parameters()).device
    expected = float(engine.evaluate(static_mask_model(model, data), data.test, "classification",
                                     device=device)["accuracy"])
    as_trained = float(engine.evaluate(copy.deepcopy(model), data.test, "classification", device=device)["accuracy"])
    if close(accuracy, expected, rel=0, abs_tol=TOLERANCE):
        return verdict(True, f"{expected:.3f} with one fixed mask against {as_trained:.3f} with per-input gates.", "")
    if close(accuracy, as_trained, rel=0, abs_tol=TOLERANCE):
        why = f"{number(accuracy)} is the accuracy with the gates as trained; fix them first (the same mask for all)"
    else:
        why = (f"{number(accuracy)} is off; choose the mask on the validation split (open for more than half of its "
               "images), fix it in every gated unit, and evaluate on the test split")
    return verdict(False, "", why)
