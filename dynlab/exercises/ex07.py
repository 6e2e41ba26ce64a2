"""Self-checks for notebook 07 (rotated kernels and orientation pooling).

- ``check_1(accuracy, model)``: a trained network's accuracy on the disc, square and ring test images turned by
  90 degrees.
- ``check_2(accuracy, model)``: the same images turned by 45 degrees (``torchvision``'s ``rotate``, its defaults).
- ``check_3(equivariant)``: whether orientation pooling by the mean instead of the max still commutes with
  90-degree turns.
- ``check_4(size)``: the smallest input size of at least 64 at which every stride-2 stage of the quick
  classification network sees an odd-sized map.
- ``check_5(accuracy, model)``: a trained time-series network's test accuracy on series reversed in time.

Checks leave the random state and the models handed in as they were. Measured answers are compared on
the whole test split of ``data``: the quick profile's data unless the run's own is given.
"""
from __future__ import annotations

import torch

from . import PROFILE, close, course_data, is_number, number, verdict

#: the classes that stay what they are under any turn (notebook 07, section 5)
SAME_CLASS = ("disc", "square", "ring")
#: measured accuracies may differ by this much (a few test images in a thousand)
TOLERANCE = 0.005
#: exercise 4: the smallest input size asked about
SMALLEST = 64


def turn(t: torch.Tensor) -> torch.Tensor:
    """A quarter turn of the last two axes, as the notebook's ``turn``."""
    return torch.rot90(t, 1, dims=(-2, -1))


def same_class_images(data) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images of the disc, square and ring classes, and their labels."""
    test = data.test
    wanted = [data.class_names.index(name) for name in SAME_CLASS if name in data.class_names]
    keep = [i for i in range(len(test)) if int(test[i][1]) in wanted]
    return torch.stack([test[i][0] for i in keep]), torch.stack([torch.as_tensor(test[i][1]) for i in keep])


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    from .. import metrics

    was_training = model.training
    model.eval()
    try:
        return float(metrics.accuracy(model(x), y))
    finally:
        model.train(was_training)


def rotated_accuracy(model: torch.nn.Module, degrees: int, data=None) -> float:
    """Accuracy of ``model`` on the disc, square and ring test images turned by ``degrees``
    (90: ``torch.rot90``; any other angle: ``torchvision.transforms.functional.rotate`` with its defaults)."""
    from torchvision.transforms.functional import rotate

    images, labels = same_class_images(course_data(data))
    turned = turn(images) if degrees == 90 else rotate(images, degrees)
    return _accuracy(model, turned, labels)


def _check_rotated(accuracy, model, degrees: int, data, right: str) -> bool:
    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.9")
    data = course_data(data)
    expected = rotated_accuracy(model, degrees, data)
    upright = rotated_accuracy(model, 0, data)
    if close(accuracy, expected, rel=0, abs_tol=TOLERANCE):
        return verdict(True, f"{expected:.3f} turned by {degrees} degrees, against {upright:.3f} upright. {right}", "")
    if close(accuracy, upright, rel=0, abs_tol=TOLERANCE):
        why = f"{number(accuracy)} is the upright accuracy; turn the images by {degrees} degrees first"
    elif close(accuracy, 100 * expected, rel=0, abs_tol=100 * TOLERANCE):
        why = f"{number(accuracy)} is a percentage; give the accuracy as a fraction"
    else:
        why = (f"{number(accuracy)} is off; keep the test images of {', '.join(SAME_CLASS)} only, turn them by "
               f"{degrees} degrees and compare the model's predictions with their (unchanged) labels")
    return verdict(False, "", why)


def check_1(accuracy, model, data=None) -> bool:
    """Exercise 1: ``model``'s accuracy on the disc, square and ring test images turned by 90 degrees (within 0.005)."""
    return _check_rotated(accuracy, model, 90, data, "Compare it with `orient`'s row in section 5, and ask what "
                                                    "the training images already taught both networks about these "
                                                    "shapes.")


def check_2(accuracy, model, data=None) -> bool:
    """Exercise 2: ``model``'s accuracy on the disc, square and ring test images turned by 45 degrees (within 0.005)."""
    return _check_rotated(accuracy, model, 45, data, "A 45-degree turn is not one of the four the kernels share, so "
                                                    "no unit is equivariant to it; the corners it cuts off and the "
                                                    "resampling change the images as well.")


def mean_pooling_error(seed: int = 0) -> float:
    """Largest |f(turn x) - turn f(x)| for a unit that averages its 4 rotated responses instead of taking the max."""
    import torch.nn.functional as F

    from ..layers.orient import oriented_kernels

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        weight = torch.randn(16, 8, 3, 3)
        x = torch.randn(2, 8, 15, 15)

    def mean_pooled(t):
        return torch.stack([F.conv2d(t, w, padding=1) for w in oriented_kernels(weight, 2)]).mean(0)

    return float((mean_pooled(turn(x)) - turn(mean_pooled(x))).abs().max())


def check_3(equivariant) -> bool:
    """Exercise 3: True or False, does pooling the four rotated responses by their mean commute with 90-degree turns?"""
    if isinstance(equivariant, torch.Tensor) and equivariant.numel() == 1 and equivariant.dtype == torch.bool:
        equivariant = bool(equivariant)
    if type(equivariant).__name__ in ("bool", "bool_"):  # numpy's bool is not a Python bool
        equivariant = bool(equivariant)
    if not isinstance(equivariant, bool):
        return verdict(False, "", f"{equivariant!r} is not True or False")
    error = mean_pooling_error()
    expected = error < 1e-4
    if equivariant == expected:
        return verdict(True, f"max |f(turn x) - turn f(x)| = {error:.1e}. Turning the input permutes the four "
                             "responses and turns them; a mean, like a max, does not care about the order. But the "
                             "mean of the four turned kernels is one kernel that looks the same at every quarter "
                             "turn: the unit is a static convolution with that kernel.", "")
    return verdict(False, "", f"measure it: with the mean, max |f(turn x) - turn f(x)| = {error:.1e} on random inputs "
                              "(15x15, padding 1)")


def stride_two_sizes(size: int) -> list[tuple[str, int]]:
    """(unit, input height) for each stride-2 ``orient`` unit of the quick classification network at ``size``."""
    from .. import models, profiles
    from ..layers import OrientedConv

    model = models.resnet18("orient", 10, **profiles.get_profile(PROFILE).model_kwargs("classification")).eval()
    seen = []
    handles = [m.register_forward_hook(lambda module, inputs, output, n=name: seen.append((n, inputs[0].shape[-1])))
               for name, m in model.named_modules() if isinstance(m, OrientedConv) and m.stride[0] == 2]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def smallest_odd_size(start: int = SMALLEST) -> int:
    """The smallest input size >= ``start`` at which every stride-2 ``orient`` unit sees an odd size."""
    size = start
    while any(seen % 2 == 0 for _, seen in stride_two_sizes(size)):
        size += 1
    return size


def check_4(size) -> bool:
    """Exercise 4: the smallest input size of at least 64 that gives every stride-2 ``orient`` unit of the quick
    classification network an odd-sized input (exact)."""
    if not is_number(size) or float(size) != int(float(size)):
        return verdict(False, "", f"{size!r} is not a whole number of pixels")
    expected = smallest_odd_size()
    size = int(float(size))
    seen = stride_two_sizes(size) if size >= 16 else []
    sizes = ", ".join(f"{n}: {s}" for n, s in seen)
    if size == expected:
        return verdict(True, f"{expected}: the stride-2 units see {sizes}. Each halving rounds up, so an odd map stays "
                             "odd only if it is one more than a multiple of 4 before the halving; the stem, though, is "
                             "a static convolution, so the whole network is still not equivariant.", "")
    if size < SMALLEST:
        return verdict(False, "", f"{size} is below {SMALLEST}; the exercise asks for the smallest size of at least "
                                  f"{SMALLEST}")
    even = [n for n, s in seen if s % 2 == 0]
    if even:
        return verdict(False, "", f"at {size} these stride-2 units see an even size: {', '.join(even)} ({sizes})")
    return verdict(False, "", f"{size} works, but a smaller size of at least {SMALLEST} does too")


def reversed_accuracy(model: torch.nn.Module, data=None) -> tuple[float, float]:
    """(accuracy on the test series reversed in time, accuracy as they are) of a time-series ``model``."""
    data = course_data(data, "timeseries")
    x = torch.stack([data.test[i][0] for i in range(len(data.test))])
    y = torch.stack([torch.as_tensor(data.test[i][1]) for i in range(len(data.test))])
    return _accuracy(model, x.flip(-1), y), _accuracy(model, x, y)


def check_5(accuracy, model, data=None) -> bool:
    """Exercise 5: the time-series ``model``'s accuracy on the test series reversed in time (within 0.005)."""
    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.7")
    backwards, forwards = reversed_accuracy(model, data)
    if close(accuracy, backwards, rel=0, abs_tol=TOLERANCE):
        return verdict(True, f"{backwards:.3f} on reversed series, {forwards:.3f} as they are. A reversed Adiac series "
                             "is the diatom's outline walked the other way round: the mirrored outline.", "")
    if close(accuracy, forwards, rel=0, abs_tol=TOLERANCE):
        why = f"{number(accuracy)} is the accuracy on the series as they are; reverse them with x.flip(-1) first"
    else:
        why = (f"{number(accuracy)} is off; flip every test series along time (x.flip(-1)) and score the "
               "predictions against the labels on the whole test split")
    return verdict(False, "", why)
