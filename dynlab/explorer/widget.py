"""The explorer's controls (ipywidgets 7.7 and 8 alike) around its state and its picture.

Each control has a ``description`` naming it in a word or two (the browser tests find them by it).
A change of variant or task loads that model (once: models, their predictions on the samples and
the attention kinds of their units are cached per (variant, task)), refreshes the controls that
depend on it without drawing, then draws once. Errors are shown in red under the picture, never
raised into the page; the last one is kept in ``error``.
"""
from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import torch
from torch import nn

from .. import layers, viz
from ..layers import StaticConv
from . import knobs, picture
from .predictions import Predictions, predict, spread_indices
from .scene import View, attention_layers, compute_row, equivalent_layer, recorded_kinds

log = logging.getLogger(__name__)

NO_COMPARE = "none"
ROTATIONS = [("0°", 0), ("90°", 1), ("180°", 2), ("270°", 3)]
_WIDE = {"description_width": "95px"}


def _shown(widget, visible: bool) -> None:
    widget.layout.display = None if visible else "none"


def _visible(widget) -> bool:
    return widget.layout.display != "none"


class Explorer:
    """Switch variant, task, layer, attention kind and sample, and see what a network attends to.

    ``Explorer(models, samples, variants, tasks, num_samples=32)``: ``models`` maps (variant, task) to a
    trained model, or is a function of (variant, task) that returns one (a study's
    ``lambda v, t: study.load_model(folder, t, v)``); ``samples`` maps a task to a dataset of (input,
    target) pairs, of which ``num_samples`` spread over it are offered. ``Explorer.from_course(...)``
    explores the shipped course models. Display it as the last line of a cell.
    """

    def __init__(self, models: Mapping | Callable[[str, str], nn.Module], samples: Mapping[str, Sequence],
                 variants: Sequence[str], tasks: Sequence[str], num_samples: int = 32) -> None:
        if not variants or not tasks:
            raise ValueError("the explorer needs at least one variant and one task")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        self._models = models
        self.samples = samples
        self.num_samples = int(num_samples)
        self._cache: dict[tuple[str, str], nn.Module] = {}
        self._predictions: dict[tuple[str, str], Predictions] = {}
        self._kinds: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._quiet = 0
        self._nothing_to_show = ""
        self.error: Exception | None = None
        self._build_controls(list(variants), list(tasks))
        self._update(self._refresh_model)
        for control in (self.variant, self.task):
            control.observe(lambda change: self._update(self._refresh_model), names="value")
        self.layer.observe(lambda change: self._update(self._refresh_kinds), names="value")
        self.misclassified.observe(lambda change: self._update(self._refresh_samples), names="value")
        for control in (self.kind, self.target, self.compare, self.sample, self.overlay, self.temperature,
                        self.gate_offset, self.rotate):
            control.observe(lambda change: self._update(), names="value")

    @classmethod
    def from_course(cls, variants: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                    runs: Mapping | None = None, profile=None, num_samples: int = 32) -> "Explorer":
        """Every variant x task of the course: the shipped course models (each loaded when first shown,
        without re-evaluation) on the test split of each task in ``profile`` (default: the course profile).

        ``runs`` ({task: Run}, a notebook's own runs of its variant, possibly retrained live) take the
        place of the course models for that variant, and the explorer opens on it.
        """
        from ..data import TASKS
        from .sources import CourseModels, CourseSamples

        runs = dict(runs or {})
        own_variants = [run.variant for run in runs.values()]
        variants = list(dict.fromkeys([*own_variants, *(variants or layers.names())]))
        tasks = list(tasks or TASKS)
        samples = CourseSamples(tasks, profile, {task: run.data for task, run in runs.items() if task in tasks})
        models = CourseModels(samples, {(run.variant, task): run.model for task, run in runs.items()})
        return cls(models, samples, variants, tasks, num_samples)

    # -- the controls ----------------------------------------------------------------------------
    def _build_controls(self, variants: list[str], tasks: list[str]) -> None:
        self.variant = widgets.Dropdown(options=variants, description="variant", style=_WIDE)
        self.task = widgets.Dropdown(options=tasks, description="task", style=_WIDE)
        self.compare = widgets.Dropdown(options=[NO_COMPARE], description="compare", style=_WIDE)
        self.layer = widgets.Dropdown(options=[], description="layer", style=_WIDE)
        self.kind = widgets.Dropdown(options=[], description="attention", style=_WIDE)
        self.target = widgets.Dropdown(options=[("predicted", "predicted")], description="Grad-CAM", style=_WIDE)
        self.sample = widgets.SelectionSlider(options=[0], description="sample", continuous_update=False,
                                              style=_WIDE)
        self.misclassified = widgets.Checkbox(value=False, description="misclassified only", indent=False)
        self.overlay = widgets.Checkbox(value=True, description="overlay", indent=False)
        self.temperature = widgets.FloatLogSlider(value=1.0, base=2, min=-3, max=5, step=0.25, readout_format=".3g",
                                                  description="temperature", continuous_update=False, style=_WIDE)
        self.gate_offset = widgets.FloatSlider(value=0.0, min=-6.0, max=6.0, step=0.5, readout_format="+.1f",
                                               description="gate offset", continuous_update=False, style=_WIDE)
        self.macs = widgets.HTML()
        self.rotate = widgets.ToggleButtons(options=ROTATIONS, description="rotate",
                                            style={**_WIDE, "button_width": "52px"})
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.caption = widgets.HTML()
        self.status = widgets.HTML()
        _shown(self.compare, len(variants) > 1)
        self.widget = widgets.VBox([
            widgets.HBox([self.variant, self.task, self.compare]),
            widgets.HBox([self.layer, self.kind, self.target]),
            widgets.HBox([self.sample, self.misclassified, self.overlay]),
            widgets.HBox([self.temperature, self.gate_offset, self.macs, self.rotate]),
            self.image, self.caption, self.status])

    @contextlib.contextmanager
    def _silently(self):
        """Change controls without drawing after each: options changes fire value events."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _update(self, refresh: Callable[[], None] | None = None) -> None:
        """Refresh what depends on a change (``refresh``), then draw once; errors go to the status line."""
        if self._quiet:
            return
        try:
            if refresh is not None:
                with self._silently():
                    refresh()
        except Exception as error:  # shown in the widget, so a classroom sees what went wrong
            self._show_error(error)
            return
        self.render()

    def _refresh_model(self) -> None:
        model = self.model()
        others = [v for v in self.variant.options if v != self.variant.value]
        previous = self.compare.value
        self.compare.options = [NO_COMPARE, *others]
        self.compare.value = previous if previous in others else NO_COMPARE
        self._refresh_targets()
        self._refresh_knobs(model)
        self._refresh_layers(model)
        self._refresh_samples()

    def _refresh_layers(self, model: nn.Module) -> None:
        names = attention_layers(model)
        previous = self.layer.value
        recording = self.unit_kinds()
        # the same layer in the next model, if it shows something there (else its default layer)
        keep = previous in names and (previous in recording or not recording)
        self.layer.options = names
        self.layer.value = previous if keep else self._default_layer(model, names)
        self._refresh_kinds()

    @staticmethod
    def _default_layer(model: nn.Module, names: list[str]):
        """A layer from the middle of the network, preferring one with attention of its own."""
        modules = dict(model.named_modules())
        dynamic = [n for n in names if not isinstance(modules[n], StaticConv)]
        choice = dynamic or names
        return choice[len(choice) // 2] if choice else None

    def _refresh_kinds(self) -> None:
        kinds = self.unit_kinds().get(self.layer.value, [])
        previous = self.kind.value
        with self._silently():
            self.kind.options = kinds or ["none"]
            self.kind.value = previous if previous in kinds else (kinds or ["none"])[0]
        self.kind.disabled = not kinds

    def _refresh_targets(self) -> None:
        predictions = self.predictions()
        names = self.class_names()
        segmentation = predictions.segmentation
        choices = [("predicted: largest foreground logit" if segmentation else "predicted class", "predicted"),
                   ("true: largest foreground class" if segmentation else "true class", "true")]
        choices += [(f"class: {picture.class_name(names, i)}", i) for i in range(predictions.num_classes)]
        previous = self.target.value
        self.target.options = choices
        self.target.value = previous if previous in ("predicted", "true") else "predicted"

    def _refresh_samples(self) -> None:
        indices = self.sample_indices()
        self._nothing_to_show = ""
        if self.misclassified.value:
            wrong = self.predictions().misclassified(indices)
            if not wrong:
                self._nothing_to_show = (f"{self.variant.value} gets all {len(indices)} test samples shown here right: "
                                         "no misclassified ones to show")
            indices = wrong or indices
        previous = self.sample.value
        self.sample.options = indices
        self.sample.value = previous if previous in indices else indices[0]
        self.sample.disabled = bool(self._nothing_to_show)

    def _refresh_knobs(self, model: nn.Module) -> None:
        own = knobs.own_temperature(model)
        _shown(self.temperature, own is not None)
        self.temperature.value = own if own is not None else 1.0
        gated = knobs.has_gates(model)
        _shown(self.gate_offset, gated)
        _shown(self.macs, gated)
        self.gate_offset.value = 0.0
        self.macs.value = ""
        x, _ = self.samples[self.task.value][0]
        _shown(self.rotate, knobs.has_orientations(model) and x.dim() == 3)
        self.rotate.value = 0

    # -- the state -------------------------------------------------------------------------------
    def model(self, variant: str | None = None) -> nn.Module:
        """The model of ``variant`` (default: the chosen one) on the chosen task, loaded once."""
        key = (variant or self.variant.value, self.task.value)
        if key not in self._cache:
            model = self._models(*key) if callable(self._models) else self._models[key]
            self._cache[key] = model.eval()
        return self._cache[key]

    def sample_indices(self) -> list[int]:
        """The dataset indices the explorer offers for the chosen task (``num_samples`` spread over its test split)."""
        return spread_indices(len(self.samples[self.task.value]), self.num_samples)

    def _samples(self) -> list:
        dataset = self.samples[self.task.value]
        return [dataset[i] for i in self.sample_indices()]

    def predictions(self) -> Predictions:
        """The chosen model's predictions on the offered samples (cached)."""
        key = (self.variant.value, self.task.value)
        if key not in self._predictions:
            self._predictions[key] = predict(self.model(), self._samples())
        return self._predictions[key]

    def unit_kinds(self) -> dict[str, list[str]]:
        """Each unit of the chosen model -> the attention kinds it records (one forward, cached)."""
        key = (self.variant.value, self.task.value)
        if key not in self._kinds:
            x, _ = self.samples[self.task.value][self.sample_indices()[0]]
            attention = layers.collect_attention(self.model(), x[None])
            self._kinds[key] = {name: recorded_kinds(kinds) for name, kinds in attention.items()}
        return self._kinds[key]

    def class_names(self) -> list[str] | None:
        """The chosen task's class names, where the samples tell them (and they fit the model)."""
        task = self.task.value
        lookup = getattr(self.samples, "class_names", None)
        names = lookup(task) if callable(lookup) else getattr(self.samples[task], "class_names", None)
        return list(names) if names is not None and len(names) == self.predictions().num_classes else None

    def current_sample(self):
        """(input batch of one, target) of the chosen sample, as stored (not rotated)."""
        x, target = self.samples[self.task.value][self.sample.value]
        return x.unsqueeze(0), target

    def view(self) -> View:
        """Every choice the controls make now."""
        return View(self.variant.value, self.task.value, self.layer.value,
                    self.kind.value if not self.kind.disabled else None, self.sample.value, self.overlay.value,
                    self.target.value, None if self.compare.value == NO_COMPARE else self.compare.value,
                    self.temperature.value if _visible(self.temperature) else None,
                    self.gate_offset.value if _visible(self.gate_offset) else 0.0,
                    self.rotate.value if _visible(self.rotate) else 0)

    def rows(self, view: View | None = None) -> list:
        """The picture's rows for ``view`` (default: the controls'): the chosen model, and the compared one."""
        view = view or self.view()
        x, target = self.samples[view.task][view.sample]
        target = torch.as_tensor(target)
        if view.rotation:
            if x.dim() != 3:
                raise ValueError("only images can be rotated: this task's samples are series")
            x = knobs.rotated(x, view.rotation)
            target = knobs.rotated(target, view.rotation) if target.dim() == 2 else target
        rows = [compute_row(self.model(view.variant), view.variant, x, target, view.layer, view.kind, view.target,
                            temperature=view.temperature, gate_offset=view.gate_offset)]
        if view.compare:
            other = self.model(view.compare)
            layer, note = equivalent_layer(attention_layers(other), view.layer)
            rows.append(compute_row(other, view.compare, x, target, layer, view.kind, view.target, layer_note=note))
        return rows

    # -- drawing ---------------------------------------------------------------------------------
    def _sample_words(self, view: View) -> str:
        words = f"{view.task} test sample {view.sample}"
        if self.misclassified.value and not self._nothing_to_show:
            wrong = self.sample.options
            words += f" (misclassified {list(wrong).index(view.sample) + 1} of {len(wrong)})"
        if view.rotation:
            words += f", input rotated {90 * view.rotation}°"
        return words

    def figure(self):
        """The picture for the controls' choices (a matplotlib Figure)."""
        return self._picture()[0]

    def _picture(self) -> tuple:
        """(figure, caption, rows) for the controls' choices; no rows when there is nothing to show."""
        if self._nothing_to_show:
            return picture.message(self._nothing_to_show), self._nothing_to_show + ".", []
        view = self.view()
        rows = self.rows(view)
        names = self.class_names()
        words = self._sample_words(view)
        return picture.draw(rows, names, view.overlay, words), picture.caption(rows, names, words), rows

    def render(self) -> None:
        """Draw the picture, its caption and the MACs line for the controls' choices."""
        try:
            fig, caption, rows = self._picture()
            self.image.value = viz.figure_png(fig)
            self.caption.value = f"<span style='font-size:90%'>{html.escape(caption)}</span>"
            if rows and rows[0].macs is not None:
                dense, executed = rows[0].macs
                self.macs.value = (f"executed <b>{picture.with_prefix(executed)}</b> of "
                                   f"{picture.with_prefix(dense)} MACs (dense) per sample")
            self.status.value = ""
            self.error = None
        except Exception as error:  # shown in the widget, so a classroom sees what went wrong
            self._show_error(error)

    def _show_error(self, error: Exception) -> None:
        self.error = error
        log.debug("the explorer could not draw this view", exc_info=error)
        self.status.value = (f"<b style='color:#b00'>could not draw this view: "
                             f"{html.escape(type(error).__name__)}: {html.escape(str(error))}</b>")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
