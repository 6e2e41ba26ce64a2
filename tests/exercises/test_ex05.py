"""Notebook 05's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import pytest
import torch

from dynlab import experiments, models
from dynlab.exercises import ex05
from exercise_output import says as _says

ONE_THREAD = True


def test_check_1(capsys):
    ratio = ex05.attention_spread(1.0) / ex05.attention_spread(30.0)
    assert 10 < ratio < 60  # the spread shrinks roughly like 1/T
    state = torch.random.get_rng_state()
    assert ex05.check_1(ratio)
    assert torch.equal(state, torch.random.get_rng_state())  # the student's random state is left alone
    assert _says(capsys, "Right:", "1/T")
    for wrong, reason in ((1 / ratio, "inverse"), (ratio * 1.2, "is off"), ("thirty", "not a number"),
                          (None, "not a number")):
        assert not ex05.check_1(wrong)
        assert _says(capsys, "Not yet:", reason)
    if abs(ratio / 30 - 1) > 0.005:
        assert not ex05.check_1(30)
        assert _says(capsys, "Not yet:", "ratio of the temperatures")


def test_check_2(capsys):
    eight, four = ex05.network_cost(8), ex05.network_cost(4)
    assert 1.8 < eight.params / four.params < 2.0 and eight.macs / four.macs < 1.5
    assert ex05.check_2(eight.params, eight.macs)
    assert _says(capsys, "Right:", f"{eight.params:,}")
    for params, macs, reason in ((four.params, four.macs, "K = 4"), (eight.params, eight.flops, "FLOPs"),
                                 (eight.macs, eight.params, "swapped"), (eight.params, eight.macs + 1, "MACs is off"),
                                 (eight.params + 1, eight.macs, "parameters is off"),
                                 (1, 2, "are off"), ("many", eight.macs, "two numbers")):
        assert not ex05.check_2(params, macs)
        assert _says(capsys, "Not yet:", reason)


@pytest.fixture(scope="module")
def condconv():
    """An untrained CondConv network of the quick classification shape, and a small slice of the data."""
    torch.manual_seed(0)
    model = models.resnet18("dyconv", 10, width=16, routing="sigmoid").eval()
    return model, experiments.load_data("classification", "synthetic", "quick", limit=ex05.SATURATION_IMAGES)


def test_check_3(capsys, condconv):
    model, data = condconv
    share, mean = ex05.saturated_share(model, data)
    assert 0 <= share <= 1 and 0 < mean < 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert ex05.check_3(share, model, data)
    assert _says(capsys, "Right:", f"{share:.3f}")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    if abs(share - mean) > 0.02 and abs(1 - share - mean) > 0.02:
        assert not ex05.check_3(mean, model, data)
        assert _says(capsys, "Not yet:", "mean routing weight")
    if abs(1 - 2 * share) > 0.02:
        assert not ex05.check_3(1 - share, model, data)
        assert _says(capsys, "Not yet:", "not saturated")
    assert not ex05.check_3(share + 0.5, model, data)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex05.check_3("half", model, data)
    assert _says(capsys, "Not yet:", "not a number")


def test_check_3_refuses_softmax_routing(capsys, condconv):
    _, data = condconv
    assert not ex05.check_3(0.0, models.resnet18("dyconv", 10, width=16), data)
    assert _says(capsys, "Not yet:", "routing='sigmoid'")


def test_check_4(capsys):
    total, kernels, convolution, mixing, attention = ex05.unit_cost()
    assert total.macs == convolution + mixing + attention  # the hand count is the library's convention
    assert ex05.check_4(total.macs)
    assert _says(capsys, "Right:", f"{total.macs:,}")
    for wrong, reason in ((convolution, "convolution alone"), (kernels * convolution, "times"),
                          (total.flops, "FLOPs"), (convolution + mixing, "attention branch"),
                          (convolution + attention, "leaves out the mixing"), (total.macs + 7, "is off"),
                          ([total.macs], "not a number")):
        assert not ex05.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_5(capsys):
    ratio, local, dyconv = ex05.mixing_ratio()
    assert 1 < ratio < 4  # local convolves K times in the blocks only
    assert ex05.check_5(ratio)
    assert _says(capsys, "Right:", f"{ratio:.2f}")
    for wrong, reason in ((1 / ratio, "inverse"), (4, "block convolutions alone"), (ratio + 0.5, "is off"),
                          ("four", "not a number")):
        assert not ex05.check_5(wrong)
        assert _says(capsys, "Not yet:", reason)
