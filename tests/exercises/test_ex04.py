"""Notebook 04's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest

from dynlab import engine, experiments
from dynlab.experiments.course_models import load_course_model
from dynlab.exercises import ex04
from exercise_output import says as _says

ONE_THREAD = True


def test_without_straight_through_nothing_reaches_the_gates():
    assert ex04.gate_network_gradient_without_straight_through() == 0.0


def test_check_2(capsys):
    for right in (None, 0, 0.0):
        assert ex04.check_2(right)
        assert _says(capsys, "Right:", "no gradient")
    assert not ex04.check_2(0.0123)
    assert _says(capsys, "Not yet:", "gate_logits.weight.grad")
    assert not ex04.check_2("None")
    assert _says(capsys, "Not yet:", "not a number")


@pytest.fixture(scope="module")
def trained():
    """The shipped course model of hard on classification, and a smaller split to keep the checks fast."""
    run = load_course_model("hard", "classification", quiet=True)
    return run.model, experiments.load_data("classification", "synthetic", "quick", limit=200)


def test_check_3(capsys, trained):
    model, data = trained
    rate = ex04.open_rate(model, data.test)
    assert 0 < rate < 1
    assert ex04.check_3(rate, model, data)
    assert _says(capsys, "Right:", f"{rate:.3f}")
    assert not ex04.check_3(100 * rate, model, data)
    assert _says(capsys, "Not yet:", "fraction")
    assert not ex04.check_3(rate + 0.05, model, data)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex04.check_3([rate], model, data)
    assert _says(capsys, "Not yet:", "not a number")


def test_check_5(capsys, trained):
    model, data = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fixed = ex04.static_mask_model(model, data)
    gates = [unit.gate_logits for unit in ex04._gated_units(fixed).values()]
    assert all(float(g.weight.detach().abs().sum()) == 0 and float(g.bias.detach().abs().min()) == ex04.FIXED_LOGIT for g in gates)
    accuracy = engine.evaluate(fixed, data.test, "classification", device="cpu")["accuracy"]
    assert ex04.check_5(accuracy, model, data)
    assert _says(capsys, "Right:", f"{accuracy:.3f}")
    assert all((before[k] == v).all() for k, v in model.state_dict().items())  # the model is left as it was
    assert not ex04.check_5(accuracy - 0.1, model, data)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex04.check_5("high", model, data)
    assert _says(capsys, "Not yet:", "not a number")


def test_check_5_names_the_accuracy_as_trained(capsys, trained):
    model, data = trained
    as_trained = engine.evaluate(model, data.test, "classification", device="cpu")["accuracy"]
    fixed = engine.evaluate(ex04.static_mask_model(model, data), data.test, "classification", device="cpu")["accuracy"]
    if abs(as_trained - fixed) <= ex04.TOLERANCE:
        pytest.skip("on this split one fixed mask changes no prediction")
    assert not ex04.check_5(as_trained, model, data)
    assert _says(capsys, "Not yet:", "as trained")
