"""Pictures and the explorer, headless: every plot returns a figure; every control redraws the picture."""
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dynlab import layers, viz
from dynlab.models import resnet18, segmentation_model, tsresnet
from dynlab.widgets import Explorer, attention_layers


def _model(variant, task):
    torch.manual_seed(0)
    if task == "classification":
        return resnet18(variant, 10, stem="small", width=8)
    if task == "timeseries":
        return tsresnet(variant, 5, channels=(8, 8, 8))
    return segmentation_model(variant, 4, width=8)


SAMPLES = {
    "classification": TensorDataset(torch.randn(4, 3, 16, 16), torch.arange(4)),
    "timeseries": TensorDataset(torch.randn(4, 1, 32), torch.arange(4)),
    "segmentation": TensorDataset(torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4, 32, 32))),
}


def test_explorer_every_control_changes_the_picture():
    explorer = Explorer(_model, SAMPLES, ["local", "odconv4x"], ["classification", "timeseries", "segmentation"],
                        num_samples=4)
    seen = [explorer.image.value]
    assert seen[0][:8] == b"\x89PNG\r\n\x1a\n"
    for control, value in [(explorer.sample, 2), (explorer.layer, explorer.layer.options[0]),
                           (explorer.variant, "odconv4x"), (explorer.task, "timeseries"),
                           (explorer.task, "segmentation")]:
        control.value = value
        assert explorer.image.value not in seen, f"changing {control.description} did not change the picture"
        assert explorer.status.value == ""
        seen.append(explorer.image.value)
    assert explorer.layer.value in attention_layers(explorer.model())


def test_explorer_shows_a_static_model_without_failing():
    explorer = Explorer(_model, SAMPLES, ["base"], ["classification"], num_samples=2)
    assert explorer.image.value and explorer.status.value == ""


def test_explorer_needs_variants_and_tasks():
    with pytest.raises(ValueError, match="at least one"):
        Explorer(_model, SAMPLES, [], ["classification"])


@pytest.mark.parametrize("variant, kinds", [("local", {"pixel"}), ("orient", {"orientation"}), ("hard", {"gates"}),
                                            ("odconv4x", {"kernel", "channel", "filter", "spatial"}),
                                            ("global", {"se"}), ("dyconv", {"kernel"})])
def test_attention_plot_for_each_variant(variant, kinds):
    model = _model(variant, "classification")
    x = torch.randn(2, 3, 16, 16)
    attention = layers.collect_attention(model, x)
    assert set().union(*(set(v) for v in attention.values())) == kinds
    fig = viz.plot_attention(attention, x, sample=1)
    assert len(fig.axes) >= 2
    assert viz.figure_png(fig)[:4] == b"\x89PNG"


def test_attention_plot_refuses_a_model_without_attention():
    with pytest.raises(ValueError, match="no attention"):
        viz.plot_attention({}, None)


def test_gradcam_shapes_and_all_zero_map_is_drawn():
    model = _model("base", "classification")
    cam = viz.gradcam(model, torch.randn(2, 3, 16, 16), model.layer2)
    assert cam.shape == (2, 16, 16) and (cam >= 0).all()
    fig, axes = viz._figure(1, 1)
    viz.draw_map(axes[0, 0], np.zeros((16, 16)), torch.randn(3, 16, 16), "Grad-CAM")
    assert "all zero" in axes[0, 0].get_title()
    seg = _model("base", "segmentation")
    assert viz.gradcam(seg, torch.randn(1, 3, 32, 32), seg.backbone.layer3).shape == (1, 32, 32)


def test_history_segmentation_and_study_plots():
    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_metric": 0.1 * e, "val_metric": None}
               for e in (1, 2, 3)]
    assert len(viz.plot_history(records).axes) == 2
    mask = torch.randint(0, 4, (16, 16))
    mask[0, 0] = 255
    assert (viz.colourise(mask)[0, 0] == 255).all()
    assert len(viz.plot_segmentation(torch.randn(3, 16, 16), mask, mask).axes) == 3
    rows = [{"task": t, "variant": v, "metric": m, "metric_name": "accuracy", "macs": macs}
            for t in ("classification", "timeseries") for v, m, macs in (("base", 0.5, 1e6), ("dyconv", 0.6, 1.3e6))]
    assert len(viz.plot_metric_per_variant(rows).axes) == 2
    assert len(viz.plot_metric_vs_macs(rows).axes) == 2


@pytest.mark.parametrize("variant, levels", [("local", 4), ("orient", 4)])
def test_index_maps_get_one_colour_and_one_tick_per_kernel_or_orientation(variant, levels):
    model = _model(variant, "classification")
    x = torch.randn(2, 3, 16, 16)
    kinds = next(iter(layers.collect_attention(model, x).values()))
    assert viz.index_levels(kinds) == levels
    fig, axes = viz._figure(1, 1)
    viz.draw_attention(axes[0, 0], kinds)
    colourbar = fig.axes[-1]
    assert list(colourbar.get_yticks()) == list(range(levels))  # on the indices, not at 0.5, 1.5, ...
    assert axes[0, 0].images[0].cmap.N == levels


def test_gradcam_on_a_segmentation_model_explains_a_foreground_class_by_default():
    logits = torch.zeros(2, 4, 8, 8)
    logits[:, 0] = 5.0  # background: the largest logit everywhere
    logits[0, 2] = 1.0
    logits[1, 3, :2] = 3.0
    assert viz.gradcam_target(logits).tolist() == [2, 3]
    assert viz.gradcam_target(torch.tensor([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]  # a classifier's prediction


def test_the_metric_plot_draws_error_bars_only_where_a_variant_has_several_runs():
    rows = [{"task": "classification", "variant": v, "metric": m, "metric_name": "accuracy", "seed": s}
            for v, s, m in (("base", 0, 0.5), ("base", 1, 0.7), ("dyconv", 0, 0.6))]
    ax = viz.plot_metric_per_variant(rows).axes[0]
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 1
    (segments,) = bars[0].lines[2]
    assert len(segments.get_segments()) == 1  # base's bar only: [0.5, 0.7]
    assert segments.get_segments()[0][:, 1].tolist() == pytest.approx([0.5, 0.7])
    single = [r for r in rows if r["seed"] == 0]
    ax = viz.plot_metric_per_variant(single).axes[0]
    assert not [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
