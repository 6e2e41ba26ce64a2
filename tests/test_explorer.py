"""The explorer, headless: every control redraws the picture, on every kind of variant and every task;
the misclassified filter, the Grad-CAM targets, compare mode and the live knobs do what they say."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from dynlab import layers
from dynlab.explorer import knobs, predictions, scene
from dynlab.layers import StaticConv
from dynlab.widgets import Explorer, attention_layers

from test_viz_widgets import SAMPLES, _model

ONE_THREAD = True  # tiny models: one intra-op thread is fastest (tests/conftest.py)

VARIANTS = layers.names()
KNOBS = {"temperature": {"dyconv", "odconv", "odconv4x", "local"}, "gate_offset": {"hard"}, "rotate": {"orient"}}


def _visible(control) -> bool:
    return control.layout.display != "none"


class Pictures:
    """The pictures an explorer has shown; each change must add a new one and no error."""

    def __init__(self, explorer) -> None:
        self.explorer = explorer
        self.seen = [explorer.image.value]
        self.check("building it")

    def check(self, what: str) -> None:
        explorer = self.explorer
        assert explorer.error is None, f"{what}: {explorer.error!r}"
        assert explorer.status.value == "", f"{what}: {explorer.status.value}"
        assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"

    def change(self, control, value) -> None:
        what = f"{control.description} -> {value!r}"
        control.value = value
        self.check(what)
        assert self.explorer.image.value not in self.seen, f"{what} did not change the picture"
        self.seen.append(self.explorer.image.value)


def _another(options, current):
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    return next(v for v in values if v != current)


def exercise_view_controls(explorer, pictures: Pictures) -> None:
    """Every control but variant and task, each to a value that must change the picture."""
    pictures.change(explorer.sample, _another(explorer.sample.options, explorer.sample.value))
    pictures.change(explorer.overlay, not explorer.overlay.value)
    for kind in [k for k in explorer.kind.options if k != explorer.kind.value]:
        pictures.change(explorer.kind, kind)
    row = explorer.rows()[0]
    label = int(row.target) if row.target.dim() == 0 else predictions.largest_foreground_class(row.target)
    chosen = next(c for c in range(row.output.shape[0]) if c not in (row.cam_class, label))
    pictures.change(explorer.target, chosen)
    if label is not None:
        pictures.change(explorer.target, "true")
    pictures.change(explorer.misclassified, True)
    layer = next(n for n in explorer.layer.options if n != explorer.layer.value)
    pictures.change(explorer.layer, layer)
    if _visible(explorer.compare):
        pictures.change(explorer.compare, _another(explorer.compare.options, explorer.compare.value))
    exercise_knobs(explorer, pictures)


def exercise_knobs(explorer, pictures: Pictures) -> None:
    if _visible(explorer.temperature):
        pictures.change(explorer.temperature, 8.0)
    if _visible(explorer.gate_offset):
        before = explorer.macs.value
        pictures.change(explorer.gate_offset, -6.0)
        assert explorer.macs.value != before and "MACs" in explorer.macs.value
    if _visible(explorer.rotate):
        pictures.change(explorer.rotate, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_control_changes_the_picture_of_each_variant(variant):
    other = "dyconv" if variant != "dyconv" else "global"
    explorer = Explorer(_model, SAMPLES, [variant, other], ["classification", "timeseries"], num_samples=4)
    pictures = Pictures(explorer)
    exercise_view_controls(explorer, pictures)
    pictures.change(explorer.task, "timeseries")
    pictures.change(explorer.variant, other)


@pytest.mark.parametrize("task", ["segmentation", "timeseries"])
def test_every_variant_and_its_attention_kinds_and_knobs_on_each_task(task):
    explorer = Explorer(_model, SAMPLES, VARIANTS, ["classification", task], num_samples=4)
    pictures = Pictures(explorer)
    pictures.change(explorer.task, task)
    for variant in VARIANTS[1:]:
        pictures.change(explorer.variant, variant)
        for kind in [k for k in explorer.kind.options if k != explorer.kind.value]:
            pictures.change(explorer.kind, kind)
        exercise_knobs(explorer, pictures)
    pictures.change(explorer.overlay, False)
    pictures.change(explorer.compare, "local")
    pictures.change(explorer.target, "true" if task == "segmentation" else 0)


def test_a_new_variant_opens_on_a_layer_with_attention():
    explorer = Explorer(_model, SAMPLES, ["orient", "global"], ["classification"], num_samples=2)
    explorer.variant.value = "global"
    assert explorer.kind.value == "se" and not explorer.kind.disabled
    explorer.layer.value = "layer1.0.conv1"
    assert explorer.kind.disabled and "static convolution" in explorer.caption.value


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_knob_is_shown_only_for_the_variants_that_have_it(variant):
    explorer = Explorer(_model, SAMPLES, [variant], ["classification", "timeseries"], num_samples=2)
    for name, owners in KNOBS.items():
        assert _visible(getattr(explorer, name)) == (variant in owners), name
    assert _visible(explorer.macs) == (variant == "hard")
    assert not _visible(explorer.compare)  # one variant: nothing to compare with
    explorer.task.value = "timeseries"
    assert not _visible(explorer.rotate), "a series cannot be rotated"
    assert _visible(explorer.temperature) == (variant in KNOBS["temperature"])


@pytest.mark.parametrize("variant", sorted(KNOBS["temperature"]))
def test_the_temperature_knob_leaves_the_models_own_temperature(variant):
    model = _model(variant, "classification")
    layers.set_temperature(model, 3.0)
    explorer = Explorer({(variant, "classification"): model}, SAMPLES, [variant], ["classification"], num_samples=2)
    assert explorer.temperature.value == 3.0
    first = explorer.image.value
    explorer.temperature.value = 0.5
    assert explorer.error is None and explorer.image.value != first
    assert "temperature 0.5" in explorer.caption.value
    assert {unit.temperature for unit in knobs.temperature_units(model)} == {3.0}


def test_the_knobs_put_the_model_back_even_after_an_error():
    model = _model("dyconv", "classification")
    with pytest.raises(RuntimeError):
        with knobs.temperature(model, 7.0):
            assert {u.temperature for u in knobs.temperature_units(model)} == {7.0}
            raise RuntimeError("a forward failed")
    assert {u.temperature for u in knobs.temperature_units(model)} == {1.0}
    gated = _model("hard", "classification")
    units = [m for m in gated.modules() if isinstance(m, layers.GatedConv)]
    x = SAMPLES["classification"].tensors[0][:2]

    def open_rate():
        return torch.cat([v["gates"].flatten() for v in layers.collect_attention(gated, x).values()]).mean()

    before = open_rate()
    with knobs.gate_offset(gated, -20.0):
        assert open_rate() == 0.0
    assert open_rate() == before and not any(u.gate_logits._forward_hooks for u in units)


def test_the_gate_offset_changes_the_executed_macs_and_closes_gates():
    explorer = Explorer(_model, SAMPLES, ["hard"], ["classification"], num_samples=2)
    dense, executed = explorer.rows()[0].macs
    assert executed <= dense
    explorer.gate_offset.value = -20.0
    row = explorer.rows()[0]
    assert row.macs[0] == dense and row.macs[1] < executed
    assert row.value.sum() == 0 and "0 of" in explorer.caption.value
    assert "every gate of this unit is closed" in explorer.caption.value


def test_rotation_turns_the_input_and_its_mask():
    image = torch.arange(2 * 3 * 3.0).reshape(2, 3, 3)
    assert torch.equal(knobs.rotated(image, 1), torch.rot90(image, 1, dims=(1, 2)))
    assert torch.equal(knobs.rotated(image, 4), image)
    explorer = Explorer(_model, SAMPLES, ["orient"], ["segmentation"], num_samples=2)
    explorer.rotate.value = 2
    x, mask = SAMPLES["segmentation"][explorer.sample.value]
    row = explorer.rows()[0]
    assert torch.equal(row.x, torch.rot90(x, 2, dims=(1, 2))) and torch.equal(row.target, torch.rot90(mask, 2))
    assert "rotated 180°" in explorer.caption.value


# -- misclassified samples -----------------------------------------------------------------------------

class FixedOutputs(nn.Module):
    """Returns the logits (or mask logits) chosen for each sample; the sample's number is in its first pixel.
    A static convolution feeds the output a little, so that Grad-CAM has a layer to look at."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.conv = StaticConv(3, 4, 3, padding=1)
        self.outputs = outputs

    def forward(self, x):
        features = self.conv(x).mean(dim=1)
        chosen = self.outputs[x[:, 0, 0, 0].round().long()]
        if chosen.dim() == 2:
            return chosen + 0.01 * features.mean(dim=(1, 2))[:, None]
        return chosen + 0.01 * features[:, None]


def _numbered(n: int, size: int = 8) -> torch.Tensor:
    x = torch.randn(n, 3, size, size)
    x[:, 0, 0, 0] = torch.arange(n).float()
    return x


def test_misclassified_only_walks_the_wrong_predictions_of_a_classifier():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    predicted = torch.tensor([0, 2, 2, 1, 1, 0])
    model = FixedOutputs(5.0 * nn.functional.one_hot(predicted, 3).float())
    samples = {"classification": TensorDataset(_numbered(6), labels)}
    explorer = Explorer({("fixed", "classification"): model}, samples, ["fixed"], ["classification"], num_samples=6)
    assert list(explorer.sample.options) == [0, 1, 2, 3, 4, 5]
    explorer.misclassified.value = True
    assert list(explorer.sample.options) == [1, 3, 5] and explorer.sample.value == 1
    assert "misclassified 1 of 3" in explorer.caption.value
    explorer.sample.value = 5
    assert explorer.error is None and "test sample 5 (misclassified 3 of 3)" in explorer.caption.value
    explorer.misclassified.value = False
    assert explorer.sample.value == 5 and len(explorer.sample.options) == 6


def test_when_nothing_is_misclassified_the_explorer_says_so():
    labels = torch.tensor([0, 1, 2])
    model = FixedOutputs(5.0 * nn.functional.one_hot(labels, 3).float())
    samples = {"classification": TensorDataset(_numbered(3), labels)}
    explorer = Explorer({("fixed", "classification"): model}, samples, ["fixed"], ["classification"])
    first = explorer.image.value
    explorer.misclassified.value = True
    assert explorer.error is None and explorer.image.value != first
    assert "no misclassified ones" in explorer.caption.value and explorer.sample.disabled


def test_a_scene_is_misclassified_when_its_largest_foreground_class_is_missed():
    target = torch.zeros(10, 10, dtype=torch.long)
    target[:4, :4] = 2   # 16 pixels: the largest foreground class
    target[8:, 8:] = 3   # 4 pixels
    target[9, 0] = 255
    assert predictions.largest_foreground_class(target) == 2
    assert not predictions.scene_missed(target, target)
    background = torch.zeros_like(target)
    assert predictions.scene_missed(target, background)  # 80% of the pixels right, but the subject is missed
    half = target.clone()
    half[:2, :4] = 0     # half of class 2 missed: not more than half
    assert not predictions.scene_missed(target, half)
    half[2, 0] = 0
    assert predictions.scene_missed(target, half)
    empty = torch.zeros(4, 4, dtype=torch.long)
    assert predictions.largest_foreground_class(empty) is None
    assert not predictions.scene_missed(empty, empty) and predictions.scene_missed(empty, torch.ones_like(empty))


def test_misclassified_scenes_in_the_explorer():
    masks = torch.zeros(3, 8, 8, dtype=torch.long)
    masks[:, 2:6, 2:6] = 2
    predicted = masks.clone()
    predicted[1] = 0  # the second scene's subject is missed
    logits = 5.0 * nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float()
    samples = {"segmentation": TensorDataset(_numbered(3), masks)}
    explorer = Explorer({("fixed", "segmentation"): FixedOutputs(logits)}, samples, ["fixed"], ["segmentation"])
    explorer.misclassified.value = True
    assert list(explorer.sample.options) == [1] and explorer.error is None
    explorer.target.value = "true"
    assert explorer.rows()[0].cam_class == 2 and "true: the largest foreground class" in explorer.caption.value


# -- Grad-CAM targets and compare mode -----------------------------------------------------------------

def test_gradcam_targets_for_a_classifier_and_a_segmenter():
    logits = torch.tensor([0.1, 2.0, 0.3])
    assert scene.gradcam_class(logits, torch.tensor(2), "predicted") == (1, "predicted", "predicted class")
    assert scene.gradcam_class(logits, torch.tensor(2), "true") == (2, "true", "true class")
    assert scene.gradcam_class(logits, torch.tensor(2), 0) == (0, "chosen", "chosen")
    seg = torch.zeros(4, 6, 6)
    seg[0] = 5.0
    seg[3, :2] = 2.0
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[3:, 3:] = 1
    assert scene.gradcam_class(seg, mask, "predicted")[0] == 3  # the largest mean foreground logit
    assert scene.gradcam_class(seg, mask, "true")[0] == 1
    assert scene.gradcam_class(seg, torch.zeros_like(mask), "true") == (
        3, "predicted", "no foreground in the true mask: the largest mean foreground logit")
    with pytest.raises(ValueError, match="Grad-CAM target"):
        scene.gradcam_class(logits, torch.tensor(0), "largest")


def test_the_gradcam_control_names_the_classes():
    labels = torch.tensor([0, 1])
    model = FixedOutputs(5.0 * nn.functional.one_hot(torch.tensor([1, 1]), 3).float())
    dataset = TensorDataset(_numbered(2), labels)
    dataset.class_names = ["disc", "ring", "square"]
    explorer = Explorer({("fixed", "classification"): model}, {"classification": dataset}, ["fixed"],
                        ["classification"])
    labels_shown = [label for label, _ in explorer.target.options]
    assert labels_shown == ["predicted class", "true class", "class: disc", "class: ring", "class: square"]
    assert "explains ring (predicted class)" in explorer.caption.value
    explorer.target.value = "true"
    assert "explains disc (true class)" in explorer.caption.value
    explorer.target.value = 2
    assert "explains square (chosen)" in explorer.caption.value


def test_equivalent_layers_of_another_model():
    names = ["layer2.0.conv1", "layer2.0.conv2", "layer2.1.conv1", "layer2.1.conv2", "layer3.0.conv1"]
    assert scene.equivalent_layer(names, "layer2.1.conv1") == ("layer2.1.conv1", "same layer")
    assert scene.equivalent_layer(names, "layer2.1.se") == ("layer2.1.conv2", "nearest to layer2.1.se")
    assert scene.equivalent_layer(names, "layer2.7.se") == ("layer2.1.conv2", "nearest to layer2.7.se")
    assert scene.equivalent_layer(names, "head.attention")[0] == "layer2.1.conv1"
    assert scene.equivalent_layer([], "layer1")[0] is None


def test_compare_draws_a_second_row_on_the_same_sample():
    explorer = Explorer(_model, SAMPLES, ["global", "odconv4x"], ["classification"], num_samples=4)
    assert explorer.layer.value.endswith(("se", "attention"))
    explorer.sample.value = 3
    explorer.compare.value = "odconv4x"
    assert explorer.error is None
    first, second = explorer.rows()
    assert torch.equal(first.x, second.x) and second.variant == "odconv4x"
    assert second.layer in attention_layers(explorer.model("odconv4x")) and second.layer_note.startswith("nearest")
    assert second.kind == "kernel"  # it records no SE weights: its first kind
    assert "Second row: odconv4x" in explorer.caption.value
    explorer.variant.value = "odconv4x"
    assert explorer.compare.value == "none" and list(explorer.compare.options) == ["none", "global"]


# -- where the models come from ----------------------------------------------------------------------

def test_errors_are_shown_in_red_not_raised():
    def broken(variant, task):
        raise FileNotFoundError("no such run: train it first")

    explorer = Explorer(broken, SAMPLES, ["dyconv"], ["classification"])
    assert "could not draw" in explorer.status.value and "train it first" in explorer.status.value
    assert isinstance(explorer.error, FileNotFoundError)


def test_from_course_uses_a_notebooks_runs_and_loads_other_models_when_shown(monkeypatch):
    from dynlab.experiments import course_models
    from dynlab.explorer import sources

    loaded = []

    def course_network(variant, task, *, folder=None, data=None):
        loaded.append((variant, task))
        return _model(variant, task)

    def no_loading(*args, **kwargs):
        raise AssertionError("the explorer loaded data it was given, or re-evaluated a course model")

    monkeypatch.setattr(course_models, "load_course_network", course_network)
    monkeypatch.setattr(course_models, "load_course_model", no_loading)
    monkeypatch.setattr(sources, "load_data", no_loading)
    own = _model("local", "classification")
    data = SimpleNamespace(test=SAMPLES["classification"], class_names=[f"shape {i}" for i in range(10)])
    run = SimpleNamespace(variant="local", model=own, data=data)
    explorer = Explorer.from_course(variants=["dyconv", "hard"], tasks=["classification"],
                                    runs={"classification": run}, num_samples=3)
    assert list(explorer.variant.options) == ["local", "dyconv", "hard"]
    assert explorer.model() is own and loaded == [] and explorer.error is None
    assert explorer.class_names() == data.class_names and ("class: shape 3", 3) in explorer.target.options
    explorer.variant.value = "hard"
    assert loaded == [("hard", "classification")] and explorer.error is None
    explorer.compare.value = "dyconv"
    assert loaded == [("hard", "classification"), ("dyconv", "classification")]


def test_from_course_on_the_shipped_course_models(monkeypatch):
    from dynlab.experiments import course_models

    def no_reevaluation(*args, **kwargs):
        raise AssertionError("the explorer re-evaluated a course model")

    monkeypatch.setattr(course_models, "load_course_model", no_reevaluation)
    explorer = Explorer.from_course(variants=["dyconv", "hard"], tasks=["timeseries", "classification"],
                                    num_samples=8)
    pictures = Pictures(explorer)
    assert len(explorer.sample.options) == 8
    pictures.change(explorer.variant, "hard")
    assert "MACs" in explorer.macs.value
    pictures.change(explorer.task, "classification")
    assert explorer.class_names()[0] == "disc"
    pictures.change(explorer.compare, "dyconv")
