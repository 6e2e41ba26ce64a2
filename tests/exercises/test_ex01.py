"""Notebook 01's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest
import torch

from dynlab import experiments, models, profiles
from dynlab.exercises import ex01
from exercise_output import says as _says

ONE_THREAD = True


def test_check_1(capsys):
    assert ex01.check_1(3)
    assert _says(capsys, "Right:", "layer2.0, layer3.0, layer4.0")
    assert not ex01.check_1(4)
    assert _says(capsys, "Not yet:", "identity")
    assert not ex01.check_1(2)
    assert _says(capsys, "Not yet:", "stride 2")
    assert not ex01.check_1("three")
    assert _says(capsys, "not a number")


def test_check_2(capsys):
    right = 64 * 56 * 56 * 64 * 3 * 3
    assert ex01.check_2(right)
    assert _says(capsys, "Right:", "115,605,504")
    for wrong, reason in ((2 * right, "FLOPs"), (right // 9, "kernel"), (right * 16, "224 x 224"), (1e6, "is off"),
                          ([right], "not a number")):
        assert not ex01.check_2(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_3(capsys):
    ratio = ex01.macs_at_width(64) / ex01.macs_at_width(16)
    assert 12 < ratio < 15  # the stem keeps it well below 16
    assert ex01.check_3(ratio)
    assert _says(capsys, "Right:", "stem")
    assert ex01.check_3(f"{ratio:.2f}")  # a number written as text is still a number
    assert _says(capsys, "Right:")
    for wrong, reason in ((16, "3x3 convolutions alone"), (4, "ratio of the widths"), (100, "is off"),
                          ("about thirteen", "not a number")):
        assert not ex01.check_3(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_4(capsys):
    ratio = ex01.macs_with_stem("small") / ex01.macs_with_stem("imagenet")
    wide = ex01.macs_with_stem("small", 64) / ex01.macs_with_stem("imagenet", 64)
    assert abs(ratio - wide) > 0.05 * ratio  # the width changes the answer
    assert ex01.check_4(ratio)
    assert _says(capsys, "Right:", "16 times the positions")
    for wrong, reason in ((wide, "width 64"), (1 / ratio, "ImageNet stem / small stem"), (16, "stages' positions"),
                          (2, "is off"), (None, "not a number")):
        assert not ex01.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)


@pytest.fixture(scope="module")
def untrained():
    """An untrained quick classification network and a small test split: it confuses some pairs, not others."""
    torch.manual_seed(0)
    model = models.resnet18("base", 10, **profiles.get_profile("quick").model_kwargs("classification"))
    return model, experiments.load_data("classification", "synthetic", "quick", limit=100)


def test_check_5(capsys, untrained):
    model, data = untrained
    errors, names = ex01.confusions(model, data)
    assert torch.equal(errors, errors.T) and int(errors.diagonal().sum()) == 0
    i, j = divmod(int(errors.argmax()), len(names))
    least = min(((a, b) for a in range(len(names)) for b in range(len(names)) if a != b), key=lambda p: errors[p])
    assert errors[least] < errors[i, j]
    model.train()
    assert ex01.check_5((names[j], names[i]), model, data)  # either order
    assert _says(capsys, "Right:", names[i], names[j])
    assert model.training  # the check leaves the model's mode as it was
    assert not ex01.check_5((names[least[0]], names[least[1]]), model, data)
    assert _says(capsys, "Not yet:", "both directions")
    for odd in ("disc", ("disc", "triangle"), 7):
        assert not ex01.check_5(odd, model, data)
        assert _says(capsys, "Not yet:", "two class names")
