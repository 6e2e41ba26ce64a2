"""Notebook 07's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import numpy as np
import pytest
import torch

from dynlab import experiments, models
from dynlab.exercises import ex07
from exercise_output import says as _says

ONE_THREAD = True


@pytest.fixture(scope="module")
def classification():
    """An untrained orient network of the quick classification shape, and a slice of the data."""
    torch.manual_seed(0)
    return models.resnet18("orient", 10, width=16).eval(), experiments.load_data("classification", "synthetic",
                                                                                 "quick", limit=200)


def test_same_class_images_are_disc_square_and_ring(classification):
    _, data = classification
    images, labels = ex07.same_class_images(data)
    assert len(images) == len(labels) > 0
    assert {data.class_names[int(y)] for y in labels} <= set(ex07.SAME_CLASS)


@pytest.mark.parametrize("check, degrees", [(ex07.check_1, 90), (ex07.check_2, 45)])
def test_rotated_checks(capsys, classification, check, degrees):
    model, data = classification
    with torch.no_grad():
        model.layer1[0].conv1.weight.add_(0.5 * torch.randn_like(model.layer1[0].conv1.weight))  # tell the angles apart
    turned, upright = ex07.rotated_accuracy(model, degrees, data), ex07.rotated_accuracy(model, 0, data)
    assert check(turned, model, data)
    assert _says(capsys, "Right:", f"{turned:.3f} turned by {degrees} degrees")
    if abs(turned - upright) > ex07.TOLERANCE:
        assert not check(upright, model, data)
        assert _says(capsys, "Not yet:", "upright accuracy")
    wrong = max((k / 20 for k in range(21)), key=lambda v: min(abs(v - turned), abs(v - upright)))
    assert not check(wrong, model, data)
    assert _says(capsys, "Not yet:", "is off")
    if turned > 0.02:
        assert not check(100 * turned, model, data)
        assert _says(capsys, "Not yet:", "percentage")
    assert not check("most", model, data)
    assert _says(capsys, "Not yet:", "not a number")


def test_check_3(capsys):
    assert ex07.mean_pooling_error() < 1e-4  # the mean over a group's orbit is equivariant too
    assert ex07.check_3(True)
    assert _says(capsys, "Right:", "static convolution")
    assert ex07.check_3(np.bool_(True)) and ex07.check_3(torch.tensor(True))
    capsys.readouterr()
    assert not ex07.check_3(False)
    assert _says(capsys, "Not yet:", "measure it")
    for odd in ("yes", 1, None):
        assert not ex07.check_3(odd)
        assert _says(capsys, "Not yet:", "not True or False")


def test_check_4(capsys):
    size = ex07.smallest_odd_size()
    assert size >= ex07.SMALLEST and all(s % 2 == 1 for _, s in ex07.stride_two_sizes(size))
    assert any(s % 2 == 0 for _, s in ex07.stride_two_sizes(size - 1)) or size == ex07.SMALLEST
    assert ex07.check_4(size)
    assert _says(capsys, "Right:", str(size), "static convolution")
    assert not ex07.check_4(ex07.SMALLEST)
    assert _says(capsys, "Not yet:", "even size")
    assert not ex07.check_4(2 * size - 1)  # odd everywhere too, but not the smallest
    assert _says(capsys, "Not yet:", "smaller size")
    assert not ex07.check_4(33)
    assert _says(capsys, "Not yet:", "below")
    for odd in (64.5, "sixty-five"):
        assert not ex07.check_4(odd)
        assert _says(capsys, "Not yet:", "whole number")


def test_check_5(capsys):
    torch.manual_seed(0)
    data = experiments.load_data("timeseries", "synthetic", "quick", limit=120)
    model = models.tsresnet("base", data.num_classes, channels=(8, 8, 8)).eval()
    backwards, forwards = ex07.reversed_accuracy(model, data)
    assert ex07.check_5(backwards, model, data)
    assert _says(capsys, "Right:", f"{backwards:.3f} on reversed series")
    if abs(backwards - forwards) > ex07.TOLERANCE:
        assert not ex07.check_5(forwards, model, data)
        assert _says(capsys, "Not yet:", "as they are")
    assert not ex07.check_5(backwards + 0.5 if backwards < 0.5 else backwards - 0.5, model, data)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex07.check_5([backwards], model, data)
    assert _says(capsys, "Not yet:", "not a number")
