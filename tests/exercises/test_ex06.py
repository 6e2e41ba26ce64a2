"""Notebook 06's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest
import torch

from dynlab import experiments, models
from dynlab.experiments.course_models import load_course_model
from dynlab.exercises import ex06
from exercise_output import says as _says

ONE_THREAD = True


@pytest.fixture(scope="module")
def data():
    return experiments.load_data("classification", "synthetic", "quick", limit=300)


@pytest.fixture(scope="module")
def odconv4x():
    torch.manual_seed(0)
    return models.resnet18("odconv4x", 10, width=16).eval()


def test_check_1(capsys, odconv4x, data):
    spreads = ex06.kernel_attention_spread(odconv4x, data)
    widest, narrowest = max(spreads, key=spreads.get), min(spreads, key=spreads.get)
    assert ex06.check_1(widest, odconv4x, data)
    assert _says(capsys, "Right:", widest)
    assert not ex06.check_1(narrowest, odconv4x, data)
    assert _says(capsys, "Not yet:", "another unit's is larger")
    assert not ex06.check_1("layer9.0.conv1", odconv4x, data)
    assert _says(capsys, "Not yet:", "not a unit")
    assert not ex06.check_1(3, odconv4x, data)
    assert _says(capsys, "Not yet:", "not a unit name")


def test_check_1_needs_the_4x_model(capsys, data):
    assert not ex06.check_1("layer1.0.conv1", models.resnet18("odconv", 10, width=16), data)
    assert _says(capsys, "Not yet:", "no kernel attention")


@pytest.fixture(scope="module")
def trained():
    """The shipped ODConv 1x course model on classification."""
    return load_course_model("odconv", "classification", quiet=True).model


def test_check_2(capsys, trained, data):
    name = "layer3.0.conv1"
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    effects = ex06.attention_fixing_effect(trained, name, data)
    assert set(effects) == {"spatial", "channel", "filter"} and all(0 <= e < 1 for e in effects.values())
    ranked = sorted(effects, key=effects.get)
    assert ex06.check_2(ranked[-1], trained, name, data)
    assert _says(capsys, "Right:", ranked[-1])
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    assert not ex06.check_2(ranked[0], trained, name, data)
    assert _says(capsys, "Not yet:", "another attention changes it more")
    assert not ex06.check_2("kernel", trained, name, data)
    assert _says(capsys, "Not yet:", "none of")
    assert not ex06.check_2("spatial", trained, "fc", data)
    assert _says(capsys, "Not yet:", "not an ODConv unit")


def test_check_2_fixing_to_the_mean_keeps_a_constant_attention():
    """An attention that does not depend on the input is unchanged when fixed to its mean."""
    torch.manual_seed(0)
    model = models.resnet18("odconv", 10, width=16).eval()
    unit = model.layer1[0].conv1
    with torch.no_grad():
        unit.attention.filter_fc.weight.zero_()
    data = experiments.load_data("classification", "synthetic", "quick", limit=ex06.IMAGES)
    assert ex06.attention_fixing_effect(model, "layer1.0.conv1", data)["filter"] < 1e-5


def test_check_3(capsys):
    total, convolution, feature_maps, weights, branch = ex06.unit_macs()
    assert total.macs == convolution + feature_maps + weights + branch
    assert ex06.check_3(total.macs)
    assert _says(capsys, "Right:", f"{total.macs:,}")
    for wrong, reason in ((convolution, "convolution alone"), (total.flops, "FLOPs"), (4 * convolution, "4 times"),
                          (total.macs - branch, "attention branch"), (total.macs - feature_maps, "alpha_c or alpha_f"),
                          (total.macs - weights // 2, "only one of"), (total.macs + 3, "is off"),
                          ("a lot", "not a number")):
        assert not ex06.check_3(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_4(capsys):
    ratio, counted, macs = ex06.counter_ratio()
    assert ratio == 2
    assert ex06.check_4(ratio)
    assert _says(capsys, "Right:", "two floating-point operations")
    for wrong, reason in ((0.5, "inverse"), (1, "not equal"), (3, "is off"), (None, "not a number")):
        assert not ex06.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_5(capsys, trained, data):
    hot = ex06.accuracy_at(trained, ex06.HOT, data)
    temperature = trained.layer1[0].conv1.temperature
    assert ex06.check_5(hot, trained, data)
    assert _says(capsys, "Right:", f"{hot:.3f}")
    assert trained.layer1[0].conv1.temperature == temperature  # the model handed in keeps its temperature
    assert not ex06.check_5(hot + 0.2, trained, data)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex06.check_5("high", trained, data)
    assert _says(capsys, "Not yet:", "not a number")


def test_check_5_names_the_accuracy_as_trained(capsys, trained, data):
    from dynlab import engine

    as_trained = engine.evaluate(trained, data.test, "classification", device="cpu")["accuracy"]
    if abs(as_trained - ex06.accuracy_at(trained, ex06.HOT, data)) <= 0.003:
        pytest.skip("on this slice the temperature changes no prediction")
    assert not ex06.check_5(as_trained, trained, data)
    assert _says(capsys, "Not yet:", "current temperature")


def test_check_6(capsys):
    differences = ex06.batch_dependence()
    assert differences["none"] < 1e-5 < differences["batch"]
    assert ex06.check_6("none")
    assert _says(capsys, "Right:", "batch's own mean and variance")
    assert not ex06.check_6("batch")
    assert _says(capsys, "Not yet:", "batch's statistics")
    for odd in ("layer", None, ["none"]):
        assert not ex06.check_6(odd)
        assert _says(capsys, "Not yet:", "not an attention_norm")
