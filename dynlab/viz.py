"""Pictures: training curves, attention maps, captum attributions, segmentation overlays, study plots.

Every function returns a matplotlib ``Figure`` (closed to pyplot, so nothing is shown twice), which a
notebook displays and a script saves with ``fig.savefig``. Nothing here needs a screen.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .device import inputs_for

#: colours for segmentation classes (0 = background); the ignore label 255 is drawn white
SEGMENTATION_COLOURS = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
     [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180],
     [0, 0, 128], [128, 128, 128]], dtype=np.uint8)

ORIENTATION_NAMES = {2: ["0°", "90°", "180°", "270°"], 1: ["forward", "reversed"]}


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] | None = None):
    fig, axes = plt.subplots(rows, cols, figsize=size or (4 * cols, 3.2 * rows), squeeze=False)
    plt.close(fig)
    return fig, axes


def figure_png(fig) -> bytes:
    """PNG bytes of a figure (what widgets and reports embed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


def _records(history) -> list[dict]:
    if isinstance(history, Mapping) and "records" in history:
        return list(history["records"])
    return [dict(r) for r in history]


def plot_history(history, title: str = "") -> "plt.Figure":
    """Loss and metric per epoch, training and validation (a ``History`` or a list of epoch records)."""
    records = _records(history)
    epochs = [r["epoch"] for r in records]
    fig, axes = _figure(1, 2, (9, 3.2))
    for ax, what in zip(axes[0], ("loss", "metric")):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{what}"
            values = [r.get(key) for r in records]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what if what == "loss" else (records[0].get("metric_name", "metric") if records else what))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def _as_image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float -> (H, W, 3) in [0, 1], rescaled per image for display."""
    x = x.detach().float().cpu()
    if x.shape[0] == 1:
        x = x.expand(3, *x.shape[1:])
    x = x[:3].permute(1, 2, 0).numpy()
    low, high = x.min(), x.max()
    return (x - low) / (high - low + 1e-8)


def draw_input(ax, x: torch.Tensor, title: str = "input") -> None:
    """An image (C, H, W) or a series (1, L)."""
    if x.dim() == 2:
        ax.plot(x[0].detach().cpu().numpy(), color="black", lw=1)
        ax.set_xlabel("time step")
    else:
        ax.imshow(_as_image(x))
        ax.axis("off")
    ax.set_title(title)


def attention_summary(kinds: Mapping[str, torch.Tensor], sample: int = 0) -> tuple[str, np.ndarray]:
    """One array that shows a unit's attention for one sample, and what it shows.

    Spatial kinds stay maps: ``pixel`` -> index of the strongest kernel at each position,
    ``orientation`` -> the most frequent winning orientation over channels. Vector kinds stay vectors.
    """
    if "pixel" in kinds:
        return "strongest kernel per position", kinds["pixel"][sample].argmax(0).numpy()
    if "orientation" in kinds:
        winners = kinds["orientation"][sample]
        counts = torch.stack([(winners == r).sum(0) for r in range(int(winners.max()) + 1)])
        return "most frequent winning orientation", counts.argmax(0).numpy()
    for kind, label in (("kernel", "kernel attention"), ("spatial", "spatial attention over kernel positions"),
                        ("gates", "open gates (output channels)"), ("se", "channel attention (SE)"),
                        ("filter", "output-channel attention"), ("channel", "input-channel attention")):
        if kind in kinds:
            return label, kinds[kind][sample].numpy()
    raise ValueError(f"no attention kinds to summarise in {sorted(kinds)}")


def index_levels(kinds: Mapping[str, torch.Tensor]) -> int | None:
    """How many values an index map of ``attention_summary`` can take (kernels, orientations), else None."""
    if "pixel" in kinds:
        return kinds["pixel"].shape[1]
    if "orientation" in kinds:
        return 4 if kinds["orientation"].dim() == 4 else 2  # (B, C, H, W): 2D rotations; (B, C, L): 1D
    return None


def draw_attention(ax, kinds: Mapping[str, torch.Tensor], sample: int = 0, kernel_size: Sequence[int] | None = None):
    label, values = attention_summary(kinds, sample)
    levels = index_levels(kinds)
    if values.ndim == 2 and levels is not None:
        # an index per position: one colour per kernel or orientation, ticks on the indices themselves
        image = ax.imshow(values, cmap=matplotlib.colormaps["viridis"].resampled(levels), vmin=-0.5, vmax=levels - 0.5,
                          interpolation="nearest")
        ax.figure.colorbar(image, ax=ax, fraction=0.046, ticks=range(levels))
        ax.axis("off")
    elif values.ndim == 2:
        image = ax.imshow(values, cmap="viridis", interpolation="nearest")
        ax.figure.colorbar(image, ax=ax, fraction=0.046)
        ax.axis("off")
    elif label.startswith("spatial") and kernel_size is not None and values.size == int(np.prod(kernel_size)) \
            and len(kernel_size) == 2:
        image = ax.imshow(values.reshape(kernel_size), cmap="viridis", vmin=0, vmax=1)
        ax.figure.colorbar(image, ax=ax, fraction=0.046)
    elif values.ndim == 1 and label.startswith(("strongest", "most frequent")):
        ax.plot(values, drawstyle="steps-mid")
        ax.set_xlabel("position")
    else:
        ax.bar(np.arange(values.size), values, width=1.0)
        ax.set_xlabel("index")
    ax.set_title(label, fontsize=9)


def plot_attention(attention: Mapping[str, Mapping[str, torch.Tensor]], x: torch.Tensor | None = None,
                   sample: int = 0, layers: Sequence[str] | None = None, max_layers: int = 4) -> "plt.Figure":
    """The input and the attention of up to ``max_layers`` units (``collect_attention``'s result)."""
    names = list(layers or attention)[:max_layers]
    if not names:
        raise ValueError("no attention to plot: this variant's units record none (e.g. `base`)")
    extra = 1 if x is not None else 0
    fig, axes = _figure(1, len(names) + extra, (3.3 * (len(names) + extra), 3.0))
    if x is not None:
        draw_input(axes[0, 0], x[sample])
    for ax, name in zip(axes[0, extra:], names):
        draw_attention(ax, attention[name], sample)
        ax.set_title(f"{name}\n{ax.get_title()}", fontsize=8)
    return fig


def gradcam(model: torch.nn.Module, x: torch.Tensor, layer: torch.nn.Module, target: int | torch.Tensor | None = None):
    """captum's LayerGradCam at ``layer``, upsampled to the input size: (B, *spatial) numpy.

    For segmentation models the target is the sum of a class's logits over the image, by default the
    foreground class with the largest mean logit (``gradcam_target``). An all-zero map
    (ReLU removes every negative evidence) is returned as zeros, not as an error. ``x`` may be on
    another device than the model; the map comes back on the CPU.
    """
    from captum.attr import LayerGradCam

    model.eval()
    x = inputs_for(model, x.detach()).clone().requires_grad_(True)
    with torch.no_grad():
        output = model(x)
    segmentation = output.dim() == 4
    if target is None:
        target = gradcam_target(output)
    elif isinstance(target, torch.Tensor):
        target = target.to(x.device)
    forward = (lambda inp: model(inp).sum(dim=(2, 3))) if segmentation else model
    cam = LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)
    mode = "bilinear" if x.dim() == 4 else "linear"
    cam = F.interpolate(cam.detach(), size=x.shape[2:], mode=mode, align_corners=False)
    return cam[:, 0].float().cpu().numpy()


def gradcam_target(output: torch.Tensor) -> torch.Tensor:
    """The class Grad-CAM explains by default: the predicted class of a classifier; for a segmentation
    model (output (B, classes, H, W), class 0 the background) the foreground class with the largest mean
    logit. Background covers most pixels, so explaining it would light up the empty parts of the image."""
    if output.dim() != 4:
        return output.argmax(1)
    return output[:, 1:].mean(dim=(2, 3)).argmax(1) + 1


def draw_map(ax, values: np.ndarray, x: torch.Tensor | None = None, title: str = "") -> None:
    """A saliency map over an image (overlay) or a series (coloured line); an all-zero map is labelled."""
    empty = not np.any(values)
    if values.ndim == 1:
        if x is not None:
            series = x[0].detach().cpu().numpy()
            ax.scatter(np.arange(series.size), series, c=values, cmap="inferno", s=6)
            ax.plot(series, color="grey", lw=0.5)
        else:
            ax.plot(values)
    else:
        if x is not None:
            ax.imshow(_as_image(x))
        ax.imshow(values, cmap="inferno", alpha=0.55 if x is not None else 1.0,
                  vmin=0, vmax=max(float(values.max()), 1e-8))
        ax.axis("off")
    ax.set_title(title + (" (all zero)" if empty else ""), fontsize=9)


def plot_gradcam(model, x: torch.Tensor, layer_name: str, sample: int = 0, target=None) -> "plt.Figure":
    layer = dict(model.named_modules())[layer_name]
    cams = gradcam(model, x[sample:sample + 1], layer, target)
    fig, axes = _figure(1, 2, (7, 3.0))
    draw_input(axes[0, 0], x[sample])
    draw_map(axes[0, 1], cams[0], x[sample], f"Grad-CAM at {layer_name}")
    return fig


def colourise(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours; 255 (ignore) is white."""
    mask = np.asarray(mask)
    out = SEGMENTATION_COLOURS[np.clip(mask, 0, len(SEGMENTATION_COLOURS) - 1) % len(SEGMENTATION_COLOURS)]
    out[mask == 255] = 255
    return out


def plot_segmentation(image: torch.Tensor, mask: torch.Tensor, prediction: torch.Tensor | None = None) -> "plt.Figure":
    panels = 3 if prediction is not None else 2
    fig, axes = _figure(1, panels, (3.2 * panels, 3.0))
    draw_input(axes[0, 0], image, "image")
    axes[0, 1].imshow(_as_image(image))
    axes[0, 1].imshow(colourise(mask), alpha=0.6)
    axes[0, 1].set_title("ground truth")
    axes[0, 1].axis("off")
    if prediction is not None:
        axes[0, 2].imshow(_as_image(image))
        axes[0, 2].imshow(colourise(prediction), alpha=0.6)
        axes[0, 2].set_title("prediction")
        axes[0, 2].axis("off")
    return fig


def plot_metric_per_variant(rows: Sequence[Mapping], task: str | None = None) -> "plt.Figure":
    """Mean metric per variant (with min-max spread over seeds/folds where a variant has several runs),
    one panel per task."""
    tasks = [task] if task else sorted({r["task"] for r in rows})
    fig, axes = _figure(1, len(tasks), (4.5 * len(tasks), 3.4))
    for ax, t in zip(axes[0], tasks):
        selected = [r for r in rows if r["task"] == t]
        variants = list(dict.fromkeys(r["variant"] for r in selected))
        values = [[float(r["metric"]) for r in selected if r["variant"] == v] for v in variants]
        means = [np.mean(v) for v in values]
        ax.bar(variants, means, color="tab:blue")
        several = [i for i, v in enumerate(values) if len(v) > 1]  # one run has no spread to draw
        if several:
            ax.errorbar([variants[i] for i in several], [means[i] for i in several], fmt="none", ecolor="black",
                        capsize=3, yerr=[[means[i] - min(values[i]) for i in several],
                                         [max(values[i]) - means[i] for i in several]])
        ax.set_title(t)
        ax.set_ylabel(selected[0]["metric_name"] if selected else "metric")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    return fig


def plot_metric_vs_macs(rows: Sequence[Mapping], task: str | None = None) -> "plt.Figure":
    """Metric against MACs per sample (log scale), one point per variant, one panel per task."""
    tasks = [task] if task else sorted({r["task"] for r in rows})
    fig, axes = _figure(1, len(tasks), (4.5 * len(tasks), 3.4))
    for ax, t in zip(axes[0], tasks):
        selected = [r for r in rows if r["task"] == t]
        for variant in dict.fromkeys(r["variant"] for r in selected):
            points = [r for r in selected if r["variant"] == variant]
            macs = float(points[0]["macs"])
            ax.scatter(macs, np.mean([float(p["metric"]) for p in points]), label=variant)
            ax.annotate(variant, (macs, np.mean([float(p["metric"]) for p in points])), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("MACs per sample")
        ax.set_ylabel(selected[0]["metric_name"] if selected else "metric")
        ax.set_title(t)
        ax.grid(alpha=0.3)
    return fig


def plot_curves(rows: Sequence[Mapping]) -> "plt.Figure":
    """Validation metric per epoch of every study cell (rows with a ``curve``), one panel per task."""
    tasks = sorted({r["task"] for r in rows})
    fig, axes = _figure(1, len(tasks), (4.5 * len(tasks), 3.4))
    for ax, task in zip(axes[0], tasks):
        for row in (r for r in rows if r["task"] == task and r.get("curve")):
            ax.plot(range(1, len(row["curve"]) + 1), row["curve"], label=f"{row['variant']} s{row['seed']}", lw=1)
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation " + next((r["metric_name"] for r in rows if r["task"] == task), "metric"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def plot_hard_cost(rows: Sequence[Mapping]) -> "plt.Figure":
    """``hard``'s MACs and wall time against the share of its gates open, as ratios to ``base`` (the rows
    of ``dynlab.bench.hard_open_rates``, one input size)."""
    fig, axes = _figure(1, 1, (5.5, 3.6))
    ax = axes[0][0]
    rates = [r["open_rate"] for r in rows]
    ax.plot(rates, [r["executed_mac_ratio"] for r in rows], "o-", label="executed MACs")
    ax.plot(rates, [r["time_ratio"] for r in rows], "^-", color="black", label="wall time")
    ax.axhline(1.0, color="grey", ls=":", label="base (static)")
    ax.set_xlabel("share of gates open")
    ax.set_ylabel("ratio to base")
    ax.set_ylim(bottom=0)
    ax.set_title(f"hard, one {rows[0]['size']}x{rows[0]['size']} input, no gradients")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


# -- one unit's attention, kind by kind (the explorer draws with these) -------------------------------

#: what each attention kind is called in titles and captions
KIND_NAMES = {
    "kernel": "kernel attention", "channel": "input-channel attention", "filter": "output-channel attention",
    "spatial": "spatial attention", "pixel": "pixel attention", "gates": "gates",
    "orientation": "winning orientation", "se": "squeeze-and-excitation weights",
}
#: kinds that are maps over the unit's output positions (they can be drawn over the input)
MAP_KINDS = ("pixel", "orientation")


def _index_colours(levels: int):
    return matplotlib.colormaps["viridis"].resampled(levels)


def orientation_winners(orientation: torch.Tensor) -> np.ndarray:
    """(C_out, *S) winning orientation per channel and position -> (*S): the most frequent winner over
    the channels at each position (ties go to the lower orientation)."""
    levels = 4 if orientation.dim() == 3 else 2
    counts = torch.stack([(orientation == r).sum(0) for r in range(levels)])
    return counts.argmax(0).numpy()


def _stretched(ax, values: np.ndarray, image: torch.Tensor, **kwargs):
    """``values`` (h, w) drawn over ``image`` (C, H, W), stretched to its size (nearest: each cell stays a block)."""
    height, width = image.shape[-2:]
    ax.imshow(_as_image(image))
    return ax.imshow(values, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest", **kwargs)


def draw_index_map(ax, index: np.ndarray, names: Sequence[str], image: torch.Tensor | None = None,
                   title: str = "") -> None:
    """An index per position (a kernel, an orientation): one colour per index, a colour bar naming them.

    2D: an image, over ``image`` (C, H, W) when given. 1D: a strip, or with ``image`` (a series (1, L))
    the series with each time step coloured by its index (positions stretched to the series' length).
    """
    levels = len(names)
    cmap = _index_colours(levels)
    norm = matplotlib.colors.BoundaryNorm(np.arange(levels + 1) - 0.5, levels)
    if index.ndim == 2:
        if image is not None:
            shown = _stretched(ax, index, image, cmap=cmap, norm=norm, alpha=0.5)
        else:
            shown = ax.imshow(index, cmap=cmap, norm=norm, interpolation="nearest")
        ax.axis("off")
    elif image is not None:
        series = image[0].detach().float().cpu().numpy()
        positions = np.linspace(0, index.size - 1, series.size).round().astype(int)
        ax.plot(series, color="grey", lw=0.5)
        shown = ax.scatter(np.arange(series.size), series, c=index[positions], cmap=cmap, norm=norm, s=6)
        ax.set_xlabel("time step")
    else:
        shown = ax.imshow(index[None, :], cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.set_box_aspect(0.2)
        ax.set_yticks([])
        ax.set_xlabel("position")
    bar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, ticks=range(levels))
    bar.ax.set_yticklabels(list(names), fontsize=7)
    ax.set_title(title, fontsize=9)


def draw_weights(ax, values, title: str = "", xlabel: str = "index") -> None:
    """A vector of attention weights as bars (kernel, channel, filter and SE attention)."""
    values = np.asarray(values, dtype=float)
    ax.bar(np.arange(values.size), values, width=0.8 if values.size <= 16 else 1.0, color="tab:blue")
    if values.size <= 16:
        ax.set_xticks(range(values.size))
    if values.size and values.min() >= 0 and values.max() <= 1:
        ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def draw_spatial_attention(ax, values, kernel_size: Sequence[int]) -> None:
    """Attention over a kernel's positions: a k x k grid (2D) or a strip of k taps (1D), each cell labelled."""
    values = np.asarray(values, dtype=float)
    shape = tuple(int(k) for k in kernel_size)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"spatial attention has {values.size} values; a kernel of size {shape} has "
                         f"{int(np.prod(shape))} positions")
    grid = values.reshape(shape if len(shape) == 2 else (1, shape[0]))
    shown = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    for (row, col), value in np.ndenumerate(grid):
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="black" if value > 0.6 else "white")
    ax.set_xticks(range(grid.shape[1]))
    ax.set_yticks(range(grid.shape[0]) if len(shape) == 2 else [])
    ax.tick_params(labelsize=7)
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, shrink=1.0 if len(shape) == 2 else 0.5)
    where = "x".join(map(str, shape)) + (" kernel positions" if len(shape) == 2 else " kernel taps")
    ax.set_title(f"spatial attention over the {where}", fontsize=9)


def draw_gates(ax, gates) -> None:
    """Open (1) and closed (0) output channels as a strip: one cell per channel."""
    gates = np.asarray(gates, dtype=float).reshape(1, -1)
    cmap = matplotlib.colors.ListedColormap(["#d9d9d9", "#2ca02c"])
    ax.imshow(gates, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_box_aspect(0.2)
    ax.set_yticks([])
    ax.set_xlabel("output channel", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"gates: {int(gates.sum())} of {gates.size} open (green)", fontsize=9)


def draw_kernel_maps(spec, pixel: torch.Tensor, image: torch.Tensor | None = None) -> list:
    """``local``'s pixel attention (K, *S) for one sample in the figure region ``spec`` (a SubplotSpec):
    one small map per kernel (its weight at each position, 0 to 1) and, on the right, the strongest
    kernel at each position (over ``image`` when given). Returns the axes, the kernels' first."""
    pixel = pixel.detach().float().cpu()
    kernels = pixel.shape[0]
    rows = 2 if kernels > 2 else 1
    cols = -(-kernels // rows)
    grid = spec.subgridspec(rows, cols + 1, wspace=0.15, hspace=0.35, width_ratios=[1] * cols + [1.6])
    fig = spec.get_gridspec().figure
    axes = []
    for k in range(kernels):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        if pixel.dim() == 3:
            ax.imshow(pixel[k].numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        else:
            ax.plot(pixel[k].numpy(), color="tab:blue", lw=1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=6)
        ax.set_title(f"kernel {k}", fontsize=8)
        axes.append(ax)
    if pixel.dim() == 3:
        fig.colorbar(axes[0].images[0], ax=axes, fraction=0.05, shrink=0.8).ax.tick_params(labelsize=7)
    strongest = fig.add_subplot(grid[:, cols])
    draw_index_map(strongest, pixel.argmax(0).numpy(), [str(k) for k in range(kernels)], image,
                   "strongest kernel")
    return axes + [strongest]


def attention_columns(kind: str | None) -> int:
    """How many figure columns ``draw_unit_attention`` takes for a kind (``pixel``'s per-kernel maps take two)."""
    return 2 if kind == "pixel" else 1


def draw_unit_attention(spec, kind: str | None, value: torch.Tensor | None, kernel_size: Sequence[int] | None = None,
                        image: torch.Tensor | None = None) -> list:
    """One kind of one unit's attention for one sample (``value`` without the batch axis), drawn as its
    shape in the figure region ``spec``: ``spatial`` as the kernel's grid (needs ``kernel_size``),
    ``kernel``/``channel``/``filter``/``se`` as bars, ``gates`` as an on/off strip, ``pixel`` as per-kernel
    maps and the strongest kernel, ``orientation`` as the winning orientation per position. Map kinds
    are drawn over ``image`` (the input) when it is given. ``kind`` None: a static convolution, said in words."""
    if kind == "pixel":
        return draw_kernel_maps(spec, value, image)
    ax = spec.get_gridspec().figure.add_subplot(spec)
    if kind is None:
        ax.text(0.5, 0.5, "a static convolution:\nno attention of its own", ha="center", va="center")
        ax.axis("off")
    elif kind == "orientation":
        levels = 4 if value.dim() == 3 else 2
        draw_index_map(ax, orientation_winners(value), ORIENTATION_NAMES[value.dim() - 1][:levels], image,
                       "winning orientation (most frequent)")
    elif kind == "spatial":
        if kernel_size is None:
            raise ValueError("spatial attention is drawn as the kernel's grid: give kernel_size")
        draw_spatial_attention(ax, value.numpy(), kernel_size)
    elif kind == "gates":
        draw_gates(ax, value.numpy())
    elif kind in KIND_NAMES:
        axis = {"kernel": "kernel", "channel": "input channel", "filter": "output channel", "se": "channel"}[kind]
        draw_weights(ax, value.numpy(), f"{KIND_NAMES[kind]}: {value.numel()} weights", axis)
    else:
        raise ValueError(f"unknown attention kind {kind!r}; known: {', '.join(KIND_NAMES)}")
    return [ax]


def plot_unit_attention(kinds: Mapping[str, torch.Tensor], kind: str, sample: int = 0,
                        kernel_size: Sequence[int] | None = None, x: torch.Tensor | None = None,
                        overlay: bool = False) -> "plt.Figure":
    """The input and one kind of one unit's attention (a value of ``collect_attention``'s result), as the
    explorer draws it; ``overlay`` draws a map kind over the input."""
    if kind not in kinds:
        raise ValueError(f"this unit records {', '.join(sorted(kinds)) or 'no attention'}, not {kind!r}")
    columns = attention_columns(kind) + (1 if x is not None else 0)
    fig = plt.figure(figsize=(3.2 * columns, 3.0))
    plt.close(fig)
    grid = fig.add_gridspec(1, columns)
    if x is not None:
        draw_input(fig.add_subplot(grid[0, 0]), x[sample])
    image = x[sample] if x is not None and overlay and kind in MAP_KINDS else None
    draw_unit_attention(grid[0, 1 if x is not None else 0:], kind, kinds[kind][sample], kernel_size, image)
    return fig


def draw_mask(ax, image: torch.Tensor, mask, title: str = "", class_names: Sequence[str] | None = None) -> None:
    """Class colours of a mask (H, W) over its image (C, H, W); 255 (ignore) is white. With
    ``class_names``, a legend below names the classes present."""
    mask = np.asarray(mask)
    ax.imshow(_as_image(image))
    ax.imshow(colourise(mask), alpha=0.6)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    if class_names is not None:
        present = [int(c) for c in np.unique(mask) if c != 255]
        handles = [matplotlib.patches.Patch(color=SEGMENTATION_COLOURS[c % len(SEGMENTATION_COLOURS)] / 255,
                                            label=class_names[c] if c < len(class_names) else f"class {c}")
                   for c in present]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7,
                  frameon=False, handlelength=1)
