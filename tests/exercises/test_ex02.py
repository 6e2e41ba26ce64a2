"""Notebook 02's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest

from dynlab import experiments
from dynlab.experiments.course_models import load_course_model
from dynlab.exercises import ex02
from exercise_output import says as _says

ONE_THREAD = True


def test_check_1(capsys):
    right = sum(c * c + c for c in (64, 64, 128, 128, 256, 256, 512, 512))
    assert ex02.check_1(right)
    assert _says(capsys, "Right:", "698,240")
    for wrong, reason in ((64 * 64 + 64, "one block's"), (right // 2, "one block per stage"),
                          (right - 2 * (64 + 128 + 256 + 512), "biases"), (right + 1, "is off"),
                          ({"count": right}, "not a number")):
        assert not ex02.check_1(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_1_names_the_bottleneck_count(capsys):
    from dynlab import models

    bottleneck = sum(p.numel() for m in models.resnet18("global").modules() if type(m).__name__ == "SqueezeExcite"
                     for p in m.parameters())
    assert not ex02.check_1(bottleneck)
    assert _says(capsys, "Not yet:", "bottleneck")


def test_check_2(capsys):
    extra = ex02._quick_se_params(4) - ex02._quick_se_params(16)
    assert extra > 0 and ex02._quick_se_params(32) == ex02._quick_se_params(16)  # the 8-unit minimum
    assert ex02.check_2(extra)
    assert _says(capsys, "Right:", "at least 8 hidden units")
    for wrong, reason in ((0, "reduction 32"), (-extra, "sign"), (ex02._quick_se_params(4), "whole"),
                          (extra + 8, "is off"), ("many", "not a number")):
        assert not ex02.check_2(wrong)
        assert _says(capsys, "Not yet:", reason)


@pytest.fixture(scope="module")
def trained():
    """The shipped course model of global on classification, and a smaller test split to keep the checks fast."""
    run = load_course_model("global", "classification", quiet=True)
    return run.model, experiments.load_data("classification", "synthetic", "quick", limit=300)


def test_check_3(capsys, trained):
    model, data = trained
    fixed = ex02.accuracy_with_fixed_attention(model, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert ex02.check_3(fixed, model, data)
    assert _says(capsys, "Right:", f"{fixed:.3f}")
    assert all((before[k] == v).all() for k, v in model.state_dict().items())  # the model is left as it was
    assert not ex02.check_3(fixed + 0.05, model, data)
    assert _says(capsys, "Not yet:", "is off")
    for odd in ("ninety percent", None):
        assert not ex02.check_3(odd, model, data)
        assert _says(capsys, "Not yet:", "not a number")


def test_check_3_names_the_accuracy_as_trained(capsys, trained):
    from dynlab import engine

    model, _ = trained
    data = experiments.load_data("classification", "synthetic", "quick")  # the whole test split
    as_trained = engine.evaluate(model, data.test, "classification", device="cpu")["accuracy"]
    fixed = ex02.accuracy_with_fixed_attention(model, data)
    if abs(as_trained - fixed) <= 0.003:
        pytest.skip("on this split SE's input dependence changes no prediction")
    assert not ex02.check_3(as_trained, model, data)
    assert _says(capsys, "Not yet:", "as trained")


def test_check_4(capsys):
    assert ex02.check_4(0.5 ** 8)
    assert _says(capsys, "Right:", "1/256")
    for wrong, reason in ((0.5, "one block"), (1, "before the addition"), (0.5 ** 4, "is off"), ([0.5], "not a number")):
        assert not ex02.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)
