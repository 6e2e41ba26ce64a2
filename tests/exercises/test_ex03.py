"""Notebook 03's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest
import torch

from dynlab import experiments, flops, layers
from dynlab.experiments.course_models import load_course_model
from dynlab.exercises import ex03
from exercise_output import says as _says

ONE_THREAD = True


@pytest.fixture(scope="module")
def trained():
    """The shipped course model of local on classification, and a smaller test split to keep the checks fast."""
    run = load_course_model("local", "classification", quiet=True)
    return run.model, experiments.load_data("classification", "synthetic", "quick", limit=100)


def test_check_1(capsys, trained):
    model, data = trained
    no_u = ex03.accuracy_without(model, "representation_logits", data)
    no_pixel = ex03.accuracy_without(model, "pixel_logits", data)
    assert abs(no_u - no_pixel) > 2 * ex03.TOLERANCE  # the two parts matter differently to the trained model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert ex03.check_1(no_u, no_pixel, model, data)
    assert _says(capsys, "Right:", f"{no_u:.3f}", f"{no_pixel:.3f}")
    assert all((before[k] == v).all() for k, v in model.state_dict().items())  # the model is left as it was
    assert not ex03.check_1(no_pixel, no_u, model, data)
    assert _says(capsys, "Not yet:", "swapped")
    assert not ex03.check_1(no_u, min(no_pixel + 0.1, 1.0) if no_pixel < 0.9 else 0.5, model, data)
    assert _says(capsys, "Not yet:", "the second")
    assert not ex03.check_1("high", no_pixel, model, data)
    assert _says(capsys, "Not yet:", "two accuracies")


def test_check_2(capsys, trained):
    model, data = trained
    temperature = model.layer1[0].conv1.temperature
    right = ex03.accuracies_at(model, data)
    assert model.layer1[0].conv1.temperature == temperature  # the model keeps its own temperature
    assert ex03.check_2(right, model, data)
    assert _says(capsys, "Right:", "hard choice")
    assert ex03.check_2({str(t): a for t, a in right.items()}, model, data)  # keys written as text
    capsys.readouterr()
    wrong = {**right, 30.0: right[30.0] + 0.1 if right[30.0] < 0.9 else 0.5}
    assert not ex03.check_2(wrong, model, data)
    assert _says(capsys, "Not yet:", "T = 30")
    for odd in ([0.5, 0.6, 0.7], {0.1: 0.5}, "cold", {1: "x", 0.1: 0.2, 30: 0.3}):
        assert not ex03.check_2(odd, model, data)
        assert _says(capsys, "Not yet:", "a dict from temperature")


def _quick_macs(variant, **options):
    return flops.cost(ex03._quick_model(variant, **options), (1, 3, 64, 64)).macs


def test_check_3(capsys):
    k8, k4 = _quick_macs("local", kernels=8), _quick_macs("local")
    assert ex03.check_3(k8)
    assert _says(capsys, "Right:", f"{k8:,}")
    for wrong, reason in ((k4, "default, 4 kernels"), (2 * k4, "doubles"), (2 * k8, "FLOPs"), (k8 / 3, "is off"),
                          ("lots", "not a number")):
        assert not ex03.check_3(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_4(capsys):
    ratio = _quick_macs("local") / _quick_macs("dyconv")
    assert ratio > 2
    assert ex03.check_4(ratio)
    assert _says(capsys, "Right:", "every position")
    for wrong, reason in ((1 / ratio, "dyconv / local"), (1.0, "is off"), (None, "not a number")):
        assert not ex03.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_5(capsys):
    conv = 64 * 64 * 9 * 32 * 32
    local = flops.cost(layers.build("local", 64, 64, 3, padding=1), (1, 64, 32, 32)).macs
    assert local > 4 * conv
    assert ex03.check_5(local)
    assert _says(capsys, "Right:", f"{local:,}")
    for wrong, reason in ((4 * conv, "four convolutions alone"), (conv, "one plain convolution"), (1e6, "is off"),
                          (torch.tensor([1.0, 2.0]), "not a number")):
        assert not ex03.check_5(wrong)
        assert _says(capsys, "Not yet:", reason)
