"""Pictures and the explorer, headless: every plot returns a figure; every control redraws the picture."""
import matplotlib.pyplot
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


# -- one unit's attention, kind by kind (what the explorer draws) ------------------------------------

def _blank_figure():
    fig = matplotlib.pyplot.figure()
    matplotlib.pyplot.close(fig)
    return fig


def test_spatial_attention_is_drawn_as_the_kernels_grid():
    fig, axes = viz._figure(1, 2)
    viz.draw_spatial_attention(axes[0, 0], np.linspace(0, 1, 9), (3, 3))
    grid = axes[0, 0].images[0].get_array()
    assert grid.shape == (3, 3) and grid[0, 0] == 0 and grid[2, 2] == 1  # row by row, as the kernel's weights
    assert [t.get_text() for t in axes[0, 0].texts][:2] == ["0.00", "0.12"] and len(axes[0, 0].texts) == 9
    assert "3x3" in axes[0, 0].get_title()
    viz.draw_spatial_attention(axes[0, 1], np.full(5, 0.5), (5,))
    assert axes[0, 1].images[0].get_array().shape == (1, 5) and "5 kernel taps" in axes[0, 1].get_title()
    with pytest.raises(ValueError, match="9 positions"):
        viz.draw_spatial_attention(axes[0, 0], np.ones(8), (3, 3))


def test_gates_are_an_on_off_strip_and_weights_are_bars():
    fig, axes = viz._figure(1, 2)
    viz.draw_gates(axes[0, 0], np.array([1.0, 0.0, 1.0, 1.0]))
    assert axes[0, 0].images[0].get_array().tolist() == [[1.0, 0.0, 1.0, 1.0]]
    assert axes[0, 0].get_title().startswith("gates: 3 of 4 open")
    viz.draw_weights(axes[0, 1], np.array([0.25, 0.75]), "kernel attention", "kernel")
    assert [p.get_height() for p in axes[0, 1].patches] == [0.25, 0.75] and axes[0, 1].get_ylim() == (0, 1)


@pytest.mark.parametrize("shape", [(4, 6, 6), (4, 20)])
def test_pixel_attention_gets_one_map_per_kernel_and_the_strongest_kernel(shape):
    pixel = torch.softmax(torch.randn(*shape), 0)
    fig = _blank_figure()
    image = torch.randn(3, 24, 24) if len(shape) == 3 else torch.randn(1, 20)
    axes = viz.draw_unit_attention(fig.add_gridspec(1, 2)[0, :], "pixel", pixel, image=image)
    assert [ax.get_title() for ax in axes] == ["kernel 0", "kernel 1", "kernel 2", "kernel 3", "strongest kernel"]
    if len(shape) == 3:
        assert np.array_equal(axes[0].images[0].get_array(), pixel[0].numpy())
        strongest = axes[-1].images[-1].get_array()  # drawn over the input, the first image
        assert len(axes[-1].images) == 2 and np.array_equal(strongest, pixel.argmax(0).numpy())
    else:
        assert np.allclose(axes[0].lines[0].get_ydata(), pixel[0].numpy())
    assert viz.attention_columns("pixel") == 2 and viz.attention_columns("kernel") == 1


def test_the_winning_orientation_is_the_most_frequent_over_channels_with_one_colour_each():
    winners = torch.zeros(3, 2, 2, dtype=torch.long)
    winners[:2, 0, 0] = 3
    winners[:, 1, 1] = 1
    assert viz.orientation_winners(winners).tolist() == [[3, 0], [0, 1]]
    fig = _blank_figure()
    (ax,) = viz.draw_unit_attention(fig.add_gridspec(1, 1)[0, 0], "orientation", winners)
    colourbar = fig.axes[-1]
    assert [t.get_text() for t in colourbar.get_yticklabels()] == ["0°", "90°", "180°", "270°"]
    assert ax.images[0].cmap.N == 4
    series = torch.tensor([[0, 1, 1], [1, 1, 0]])
    assert viz.orientation_winners(series).tolist() == [0, 1, 0]


@pytest.mark.parametrize("variant", ["global", "local", "hard", "odconv4x", "orient"])
def test_each_kind_of_a_unit_is_drawn_alone_and_over_the_input(variant):
    model = _model(variant, "classification")
    x = torch.randn(2, 3, 16, 16)
    name, kinds = list(layers.collect_attention(model, x).items())[-1]
    kernel_size = getattr(dict(model.named_modules())[name], "kernel_size", None)
    for kind in kinds:
        alone = viz.plot_unit_attention(kinds, kind, 1, kernel_size)
        over = viz.plot_unit_attention(kinds, kind, 1, kernel_size, x=x, overlay=True)
        assert viz.figure_png(alone)[:4] == b"\x89PNG" and viz.figure_png(over)[:4] == b"\x89PNG"
        if kind in viz.MAP_KINDS:  # the map is drawn over the input image: two images in its panel
            assert len(over.axes[-2].images) == 2  # the map's panel is the last but its colour bar
    with pytest.raises(ValueError, match="not 'filter'" if variant != "odconv4x" else "not 'pixel'"):
        viz.plot_unit_attention(kinds, "filter" if variant != "odconv4x" else "pixel")


def test_a_mask_names_the_classes_it_shows():
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[:4] = 2
    mask[0, 0] = 255
    fig, axes = viz._figure(1, 1)
    viz.draw_mask(axes[0, 0], torch.randn(3, 8, 8), mask, "ground truth", ["background", "disc", "ring"])
    assert [t.get_text() for t in axes[0, 0].get_legend().get_texts()] == ["background", "ring"]
    assert (viz.colourise(mask)[0, 0] == 255).all()
