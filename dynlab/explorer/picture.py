"""The explorer's picture and its caption, from computed ``Row``s; every panel is a ``dynlab.viz`` drawer.

A row is one model on the sample: the input (for segmentation also the ground truth and the
prediction), the chosen kind of the chosen unit's attention drawn as its shape, and Grad-CAM.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from .. import viz
from .scene import Row

COLUMN_INCHES = 2.6
ROW_INCHES = 3.0


def class_name(names: Sequence[str] | None, index: int) -> str:
    return names[index] if names is not None and 0 <= index < len(names) else f"class {index}"


def _columns(row: Row) -> int:
    return (3 if row.segmentation else 1) + viz.attention_columns(row.kind) + 1


def _row_label(row: Row) -> str:
    note = f"\n({row.layer_note})" if row.layer_note and row.layer_note != "same layer" else ""
    return f"{row.variant} · {row.layer}{note}"


def _draw_row(fig, grid, index: int, row: Row, names: Sequence[str] | None, overlay: bool) -> None:
    first = fig.add_subplot(grid[index, 0])
    if row.segmentation:
        viz.draw_input(first, row.x, _row_label(row))
        viz.draw_mask(fig.add_subplot(grid[index, 1]), row.x, row.target, "ground truth", names)
        accuracy = _pixel_accuracy(row)
        viz.draw_mask(fig.add_subplot(grid[index, 2]), row.x, row.predicted,
                      f"prediction ({100 * accuracy:.0f}% of pixels right)", names)
        column = 3
    else:
        title = (f"{_row_label(row)}\nlabel: {class_name(names, int(row.target))}\n"
                 f"predicted: {class_name(names, int(row.predicted))}")
        viz.draw_input(first, row.x, title)
        column = 1
    first.title.set_fontsize(9)
    width = viz.attention_columns(row.kind)
    image = row.x if overlay and row.kind in viz.MAP_KINDS else None
    viz.draw_unit_attention(grid[index, column:column + width], row.kind, row.value, row.kernel_size, image)
    column += width
    if row.cam is not None:
        viz.draw_map(fig.add_subplot(grid[index, column]), row.cam, row.x if overlay else None,
                     f"Grad-CAM at {row.layer}\nfor {class_name(names, row.cam_class)} ({row.cam_choice})")


def _pixel_accuracy(row: Row) -> float:
    labelled = row.target != 255
    return float((row.predicted[labelled] == row.target[labelled]).float().mean()) if labelled.any() else 1.0


def draw(rows: Sequence[Row], names: Sequence[str] | None, overlay: bool, title: str) -> "plt.Figure":
    """The picture: one row per model, the first the chosen variant, the second the one compared with it."""
    columns = max(_columns(row) for row in rows)
    fig = plt.figure(figsize=(COLUMN_INCHES * columns, ROW_INCHES * len(rows) + 0.4), layout="constrained")
    plt.close(fig)
    grid = fig.add_gridspec(len(rows), columns)
    for index, row in enumerate(rows):
        _draw_row(fig, grid, index, row, names, overlay)
    fig.suptitle(title, fontsize=10)
    return fig


def message(text: str) -> "plt.Figure":
    """A picture that says ``text`` (when there is nothing to draw, e.g. no misclassified samples)."""
    fig, axes = viz._figure(1, 1, (6, 1.6))
    axes[0, 0].text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    axes[0, 0].axis("off")
    return fig


# -- the caption --------------------------------------------------------------------------------------

def _positions(value) -> str:
    """'8x8' for a map, '176' for a series."""
    return "x".join(str(int(s)) for s in value.shape)


def attention_words(row: Row) -> str:
    """What the attention panel of ``row`` shows, in one clause."""
    layer, value = row.layer, row.value
    if row.kind is None:
        return f"{layer} is a static convolution: no attention of its own"
    thing = "scene" if row.segmentation else ("series" if row.x.dim() == 2 else "image")
    if row.kind == "kernel":
        return f"kernel attention of {layer}: {value.numel()} weights, one per kernel, for this {thing}"
    if row.kind in ("channel", "filter", "se"):
        return f"{viz.KIND_NAMES[row.kind]} of {layer}: {value.numel()} channel weights for this {thing}"
    if row.kind == "spatial":
        grid = "x".join(str(k) for k in row.kernel_size)
        return (f"spatial attention of {layer}: {value.numel()} weights over its {grid} kernel positions "
                f"for this {thing}")
    if row.kind == "gates":
        return f"gates of {layer}: {int(value.sum())} of {value.numel()} output channels open for this {thing}"
    if row.kind == "pixel":
        return (f"pixel attention of {layer}: each of its {value.shape[0]} kernels' weight at each of "
                f"{_positions(value[0])} positions (they sum to 1 at each) and the strongest kernel there")
    if row.kind == "orientation":
        return (f"winning orientation of {layer}: the most frequent winner over its {value.shape[0]} channels at "
                f"each of {_positions(value[0])} positions")
    return f"{row.kind} attention of {layer}"


def _knob_words(row: Row) -> list[str]:
    words = []
    if row.temperature is not None:
        words.append(f"temperature {row.temperature:.3g}")
    if row.gate_offset is not None:
        words.append(f"gate offset {row.gate_offset:+.1f}")
    if row.macs is not None:
        dense, executed = row.macs
        words.append(f"{with_prefix(executed)} of {with_prefix(dense)} MACs executed ({100 * executed / dense:.0f}%)")
    return words


def with_prefix(value: float) -> str:
    """12.3 M, 456 k: a count with its SI prefix."""
    for factor, prefix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= factor:
            return f"{value / factor:.3g}{prefix}"
    return f"{value:.0f}"


def caption(rows: Sequence[Row], names: Sequence[str] | None, sample_words: str) -> str:
    """The line under the picture: what is drawn, in words (plain text)."""
    first = rows[0]
    parts = [f"{first.variant}, {sample_words}: " + "; ".join([attention_words(first), *_knob_words(first)]) + "."]
    if first.cam is not None:
        parts.append(f"Grad-CAM at {first.layer} explains {class_name(names, first.cam_class)} ({first.cam_reason}).")
    for row in rows[1:]:
        parts.append(f"Second row: {row.variant} at {row.layer} ({row.layer_note}), at its own settings: "
                     + "; ".join([attention_words(row), *_knob_words(row)]) + ".")
    return " ".join(parts)
