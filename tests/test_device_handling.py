"""What shows a model takes inputs where the caller has them: on the CPU, in float32, while the model
may sit on the device it trained on. A CPU has one device, so the model here differs in its type
(float64), which fails the same way as a device mismatch when the inputs are not moved."""
import pytest
import torch

from dynlab import layers, viz
from dynlab.device import inputs_for
from dynlab.widgets import Explorer

from test_viz_widgets import SAMPLES, _model

VARIANTS = ["global", "local", "hard", "dyconv", "odconv4x", "orient"]


def _double_model(variant, task):
    return _model(variant, task).double().eval()


def test_a_float64_model_refuses_float32_inputs_unless_they_are_moved():
    model = _double_model("global", "classification")
    x = SAMPLES["classification"].tensors[0]
    with pytest.raises(RuntimeError):
        model(x)
    moved = inputs_for(model, x)
    assert moved.dtype == torch.float64 and moved.device == next(model.parameters()).device
    assert inputs_for(model, torch.arange(3)).dtype == torch.int64  # labels and indices keep their type
    assert inputs_for(torch.nn.ReLU(), x) is x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("task", ["classification", "timeseries", "segmentation"])
def test_attention_and_gradcam_move_the_inputs_to_the_model(variant, task):
    model = _double_model(variant, task)
    x = SAMPLES[task].tensors[0][:2]
    attention = layers.collect_attention(model, x)
    assert attention and all(v.device.type == "cpu" for kinds in attention.values() for v in kinds.values())
    layer = dict(model.named_modules())[next(iter(attention))]
    cam = viz.gradcam(model, x, layer)
    assert cam.shape == (2, *x.shape[2:]) and cam.dtype.kind == "f"


def test_the_explorer_draws_a_model_of_another_type_than_its_samples():
    explorer = Explorer(_double_model, SAMPLES, ["odconv", "local"], ["classification", "segmentation"],
                        num_samples=2)
    first = explorer.image.value
    explorer.task.value = "segmentation"
    assert explorer.status.value == "" and explorer.image.value != first
