"""The explorer: switch variant, task, layer and sample, and see what the network attends to.

Built only from ``dynlab.viz`` functions, so what the widget shows is what the notebooks plot. The
picture is an ``ipywidgets.Image`` holding PNG bytes: a test (or a browser) can check it changes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import torch
from torch import nn

from . import viz
from .device import inputs_for
from .layers import AttentionRecorder, StaticConv, collect_attention


def attention_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose attention can be shown (conv units and post-block attention)."""
    return [name for name, m in model.named_modules() if isinstance(m, AttentionRecorder)]


class Explorer:
    """``Explorer(models, samples, variants, tasks)``; display it as the last line of a cell.

    ``models`` maps (variant, task) to a trained model, or is a function of (variant, task) that
    returns one; ``samples`` maps a task to a dataset of (input, target) pairs.
    """

    def __init__(self, models: Mapping | Callable[[str, str], nn.Module], samples: Mapping[str, Sequence],
                 variants: Sequence[str], tasks: Sequence[str], num_samples: int = 8) -> None:
        if not variants or not tasks:
            raise ValueError("the explorer needs at least one variant and one task")
        self._models = models
        self._cache: dict[tuple[str, str], nn.Module] = {}
        self._quiet = False
        self.samples = samples
        self.variant = widgets.Dropdown(options=list(variants), description="variant")
        self.task = widgets.Dropdown(options=list(tasks), description="task")
        self.layer = widgets.Dropdown(options=[], description="layer")
        self.sample = widgets.IntSlider(value=0, min=0, max=num_samples - 1, description="sample")
        self.image = widgets.Image(format="png")
        self.status = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.variant, self.task]), widgets.HBox([self.layer, self.sample]),
                                    self.image, self.status])
        self._refresh_layers()
        self.render()
        self.variant.observe(self._on_model_change, names="value")
        self.task.observe(self._on_model_change, names="value")
        self.layer.observe(self._on_view_change, names="value")
        self.sample.observe(self._on_view_change, names="value")

    # -- model and data --------------------------------------------------------------------------
    def model(self) -> nn.Module:
        key = (self.variant.value, self.task.value)
        if key not in self._cache:
            model = self._models(*key) if callable(self._models) else self._models[key]
            self._cache[key] = model.eval()
        return self._cache[key]

    def current_sample(self):
        dataset = self.samples[self.task.value]
        x, target = dataset[self.sample.value % len(dataset)]
        return x.unsqueeze(0), target

    # -- events ----------------------------------------------------------------------------------
    def _refresh_layers(self) -> None:
        names = attention_layers(self.model())
        previous = self.layer.value
        self._quiet = True  # changing the options fires value events: draw once, afterwards
        try:
            self.layer.options = names
            self.layer.value = previous if previous in names else self._default_layer(names)
        finally:
            self._quiet = False

    def _default_layer(self, names: list[str]):
        """A layer from the middle of the network, preferring one with attention of its own."""
        modules = dict(self.model().named_modules())
        dynamic = [n for n in names if not isinstance(modules[n], StaticConv)]
        choice = dynamic or names
        return choice[len(choice) // 2] if choice else None

    def _on_view_change(self, change) -> None:
        if not self._quiet:
            self.render()

    def _on_model_change(self, change) -> None:
        self._refresh_layers()
        self.render()

    # -- drawing ---------------------------------------------------------------------------------
    def figure(self):
        model = self.model()
        x, target = self.current_sample()
        layer = self.layer.value
        with torch.no_grad():
            output = model(inputs_for(model, x)).float().cpu()
        segmentation = output.dim() == 4
        attention = collect_attention(model, x)
        fig, axes = viz._figure(1, 3, (10.5, 3.2))
        if segmentation:
            axes[0, 0].imshow(viz._as_image(x[0]))
            axes[0, 0].imshow(viz.colourise(output.argmax(1)[0]), alpha=0.55)
            axes[0, 0].set_title("prediction")
            axes[0, 0].axis("off")
        else:
            viz.draw_input(axes[0, 0], x[0], f"label {int(target)}, predicted {int(output.argmax(1))}")
        if layer in attention:
            viz.draw_attention(axes[0, 1], attention[layer], 0)
        else:
            axes[0, 1].text(0.5, 0.5, "a static convolution:\nno attention of its own", ha="center", va="center")
            axes[0, 1].axis("off")
        if layer is not None:
            cam = viz.gradcam(model, x, dict(model.named_modules())[layer])
            viz.draw_map(axes[0, 2], cam[0], x[0], "Grad-CAM")
        fig.suptitle(f"{self.variant.value} / {self.task.value} / {layer}", fontsize=10)
        return fig

    def render(self) -> None:
        try:
            self.image.value = viz.figure_png(self.figure())
            self.status.value = ""
        except Exception as error:  # shown in the widget, so a classroom sees what went wrong
            self.status.value = f"<b style='color:#b00'>could not draw this view: {error}</b>"
            raise

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
