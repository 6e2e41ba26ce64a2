"""One diagram per conv unit: what each variant computes, drawn with matplotlib alone.

``unit_diagram(name)`` returns a ``Figure`` (closed to pyplot, like ``dynlab.viz``) for every name in
``dynlab.layers.names()``. The math each picture follows is in the variant's file in ``dynlab/layers``.

Every diagram uses the same four colours: data tensors, learned layers, the attention path (everything
that computes an attention, learned or not) and elementwise operations. Coordinates are in inches: the
drawing's axes cover the figure, so a box's size on the page is the size given here.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Patch, Rectangle

from .layers import names

#: (fill, edge, legend label) for each kind of element
_KINDS = {
    "data": ("#e1ecf8", "#2b5f9e", "data tensor"),
    "layer": ("#fde4c8", "#b8612a", "learned layer"),
    "attention": ("#e2f2dc", "#3a7f34", "attention path"),
    "op": ("#fff3c2", "#8f7400", "elementwise operation"),
}
_TEXT = "#222222"
_NOTE = "#555555"
_FONT = 9.5
_SHAPE_FONT = 8
_TITLE_HEIGHT = 0.42
_LEGEND_HEIGHT = 0.32


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def left(self):
        return (self.x - self.w / 2, self.y)

    @property
    def right(self):
        return (self.x + self.w / 2, self.y)

    @property
    def top(self):
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self):
        return (self.x, self.y - self.h / 2)


class _Canvas:
    """A blank page ``width`` x ``height`` inches (below the title, above the legend) to draw on."""

    def __init__(self, width: float, height: float, title: str) -> None:
        total = height + _TITLE_HEIGHT + _LEGEND_HEIGHT
        self.fig = plt.figure(figsize=(width, total), facecolor="white")
        plt.close(self.fig)
        self.ax = self.fig.add_axes((0, _LEGEND_HEIGHT / total, 1, height / total))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.set_axis_off()
        self.fig.suptitle(title, y=1 - 0.1 / total, va="top", fontsize=11.5, fontweight="bold", color=_TEXT)
        self.kinds: list[str] = []

    def _use(self, kind: str) -> None:
        if kind not in self.kinds:
            self.kinds.append(kind)

    def box(self, x: float, y: float, label: str, kind: str, shape: str = "", width: float = 0.0,
            height: float = 0.0, dashed: bool = False) -> _Box:
        """A rounded box centred at (x, y), wide enough for its label and, below it in small type, a shape."""
        fill, edge, _ = _KINDS[kind]
        self._use(kind)
        h = height or (0.62 if shape else 0.42)
        label_y = y + 0.11 if shape else y
        text = self.ax.text(x, label_y, label, ha="center", va="center", fontsize=_FONT, color=_TEXT, zorder=4)
        w = _measure(self.fig, text)
        if shape:
            small = self.ax.text(x, y - 0.15, shape, ha="center", va="center", fontsize=_SHAPE_FONT, color=_NOTE,
                                 zorder=4)
            w = max(w, _measure(self.fig, small))
        w = max(width, w + 0.24)
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.07",
                                         facecolor=fill, edgecolor=edge, linewidth=1.2,
                                         linestyle="--" if dashed else "-", zorder=3))
        return _Box(x, y, w, h)

    def op(self, x: float, y: float, symbol: str, radius: float = 0.19) -> _Box:
        """A circle holding an elementwise operation's symbol (mathtext welcome)."""
        fill, edge, _ = _KINDS["op"]
        self._use("op")
        self.ax.add_patch(Circle((x, y), radius, facecolor=fill, edgecolor=edge, linewidth=1.2, zorder=3))
        self.ax.text(x, y, symbol, ha="center", va="center", fontsize=12, color=_TEXT, zorder=4)
        return _Box(x, y, 2 * radius, 2 * radius)

    def arrow(self, *points, kind: str = "data", dashed: bool = False, head: bool = True) -> None:
        """A line through ``points`` (x, y) with an arrowhead at the last one, coloured by the path it is on."""
        colour = _KINDS[kind][1] if kind != "data" else "#444444"
        style = "--" if dashed else "-"
        for start, end in zip(points[:-2], points[1:-1]):
            self.ax.plot([start[0], end[0]], [start[1], end[1]], color=colour, linewidth=1.3, linestyle=style,
                         solid_capstyle="butt", zorder=2)
        self.ax.annotate("", xy=points[-1], xytext=points[-2], zorder=2,
                         arrowprops=dict(arrowstyle="-|>" if head else "-", color=colour, linewidth=1.3,
                                         linestyle=style, shrinkA=0, shrinkB=0, mutation_scale=12))

    def note(self, x: float, y: float, text: str, ha: str = "center", fontsize: float = 8.5, color: str = _NOTE,
             **kwargs) -> None:
        """Explanatory text, grey unless told."""
        self.ax.text(x, y, text, ha=ha, va="center", fontsize=fontsize, color=color, zorder=4, **kwargs)

    def group(self, x0: float, y0: float, x1: float, y1: float, label: str) -> None:
        """A dashed frame around a group of elements, named above it."""
        self.ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#777777", linewidth=1.0,
                                    linestyle=(0, (4, 3)), zorder=1))
        self.note((x0 + x1) / 2, y1 + 0.13, label, fontsize=8.5, style="italic")

    def finish(self) -> Figure:
        """The figure, with a legend of the kinds of element it draws."""
        handles = [Patch(facecolor=_KINDS[k][0], edgecolor=_KINDS[k][1], label=_KINDS[k][2]) for k in _KINDS
                   if k in self.kinds]
        self.fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8.5,
                        bbox_to_anchor=(0.5, 0.0), handlelength=1.6)
        return self.fig


def _measure(fig: Figure, text) -> float:
    """The width of a text artist, in inches."""
    return text.get_window_extent().width / fig.dpi


def _chain(canvas: _Canvas, boxes, kind: str = "data") -> None:
    """Arrows from each box to the next, along a row."""
    for a, b in zip(boxes, boxes[1:]):
        canvas.arrow(a.right, b.left, kind=kind)


def _base() -> Figure:
    c = _Canvas(10, 3.0, "base: ResNet BasicBlock with static 3×3 convolutions (He et al. 2016)")
    y = 1.55
    x_in = c.box(0.55, y, "x", "data", "C×H×W")
    conv1 = c.box(1.8, y, "conv 3×3", "layer")
    bn1 = c.box(2.9, y, "BN", "layer")
    relu1 = c.box(3.8, y, "ReLU", "op")
    conv2 = c.box(4.95, y, "conv 3×3", "layer")
    bn2 = c.box(6.05, y, "BN", "layer")
    add = c.op(6.95, y, "+")
    relu2 = c.box(7.8, y, "ReLU", "op")
    out = c.box(9.1, y, "y", "data", "C'×H'×W'")
    _chain(c, [x_in, conv1, bn1, relu1, conv2, bn2, add, relu2, out])
    for conv in (conv1, conv2):
        c.group(conv.x - conv.w / 2 - 0.1, y - 0.33, conv.x + conv.w / 2 + 0.1, y + 0.33, "conv unit")
    shortcut = c.box(3.9, 0.5, "shortcut: identity, or conv 1×1 + BN", "layer", dashed=True)
    c.arrow(x_in.bottom, (x_in.x, shortcut.y), shortcut.left)
    c.arrow(shortcut.right, (add.x, shortcut.y), add.bottom)
    c.note(6.3, 0.2, "conv 1×1 + BN when the block changes\nthe stride or the number of channels", ha="left")
    c.note(5.0, 2.5, "the dynamic variants replace the two conv units (global adds attention after the second BN "
                      "instead);\nthe stem and the 1×1 shortcut stay static")
    return c.finish()


def _global() -> Figure:
    c = _Canvas(11, 3.45, "global: squeeze-and-excitation after the block (Hu et al. 2018)")
    y = 2.65
    x_in = c.box(0.55, y, "x", "data")
    conv1 = c.box(1.65, y, "conv 3×3", "layer")
    bn1 = c.box(2.65, y, "BN", "layer")
    relu1 = c.box(3.5, y, "ReLU", "op")
    conv2 = c.box(4.5, y, "conv 3×3", "layer")
    bn2 = c.box(5.5, y, "BN", "layer")
    feature = c.box(6.45, y, "F", "data", "C×H×W")
    scale = c.op(7.6, y, r"$\odot$")
    add = c.op(8.45, y, "+")
    relu2 = c.box(9.3, y, "ReLU", "op")
    out = c.box(10.4, y, "y", "data", "C×H×W")
    _chain(c, [x_in, conv1, bn1, relu1, conv2, bn2, feature, scale, add, relu2, out])
    c.note((scale.x + add.x) / 2, y + 0.17, "F'")
    c.arrow(x_in.top, (x_in.x, 3.3), (add.x, 3.3), add.top)
    c.note(4.5, 3.42, "shortcut (identity, or conv 1×1 + BN)")

    s = 1.25
    gap = c.box(1.2, s, "GAP", "attention", "C×H×W → C")
    fc1 = c.box(2.55, s, "FC", "attention", "C → C/16")
    relu = c.box(3.65, s, "ReLU", "attention")
    fc2 = c.box(4.75, s, "FC", "attention", "C/16 → C")
    sigmoid = c.box(5.95, s, "sigmoid", "attention")
    weights = c.box(scale.x, s, "A", "data", "C: one per channel")
    _chain(c, [gap, fc1, relu, fc2, sigmoid], kind="attention")
    c.arrow(sigmoid.right, weights.left, kind="attention")
    c.arrow(weights.top, scale.bottom, kind="attention")
    c.arrow(feature.bottom, (feature.x, 2.0), (gap.x, 2.0), gap.top, kind="attention")
    c.group(0.55, 0.85, 6.65, 1.65, "squeeze-and-excitation: the post-block attention")
    c.note(5.5, 0.3, "A = sigmoid(W₂ ReLU(W₁ GAP(F))), hidden size C/16 (at least 8);   "
                     "F' = A ⊙ F scales each channel, broadcast over its H×W positions")
    return c.finish()


def _local() -> Figure:
    c = _Canvas(10.5, 3.8, "local: pixel-wise mixture of K kernels with a kernel representation (the seed's §2.1.2)")
    x_in = c.box(0.55, 2.75, "x", "data", r"$C_{in}$×H×W")
    bus = 1.25
    c.arrow(x_in.right, (bus, x_in.y), head=False)
    rows = (3.4, 2.9, 2.05)
    kernels = [c.box(2.6, y, label, "layer", width=1.3) for y, label in
               zip(rows, (r"$W_1 \ast x$", r"$W_2 \ast x$", r"$W_K \ast x$"))]
    c.note(2.6, 2.52, "⋮", fontsize=11)
    c.note(2.6, 3.74, "K = 4 kernels, each convolving x")
    c.arrow((bus, rows[0]), (bus, 0.9), head=False)
    for box in kernels:
        c.arrow((bus, box.y), box.left)
    mix = c.op(6.9, 2.75, r"$\Sigma_k$", radius=0.26)
    for box in kernels:
        c.arrow(box.right, (6.1, box.y), (mix.left[0] + 0.02, mix.y + (box.y - mix.y) * 0.08))
    c.note(4.5, 3.56, r"K maps, $C_{out}$×H×W each")
    out = c.box(8.4, 2.75, "y", "data", r"$C_{out}$×H×W")
    c.arrow(mix.right, out.left)
    c.note(8.4, 3.35, r"$y(p) = \Sigma_k\, A_k(p)\, (W_k \ast x)(p)$", fontsize=10, color=_TEXT)

    a = 1.4
    logits = c.box(2.6, a, "conv 1×1", "attention", r"$C_{in}$ → K logits per position")
    plus = c.op(4.3, a, "+")
    softmax = c.box(5.55, a, "softmax over k", "attention", "of logits / T")
    pixel = c.box(mix.x, a, r"$A_k(p)$", "data", "K×H×W")
    c.arrow((bus, a), logits.left, kind="attention")
    _chain(c, [logits, plus, softmax, pixel], kind="attention")
    c.arrow(pixel.top, mix.bottom, kind="attention")

    r = 0.35
    previous = c.box(0.6, r, "r", "data", "previous unit")
    update = c.box(2.4, r, r"$r \leftarrow \tanh(V\,[\mathrm{GAP}(x);\ r])$", "attention")
    current = c.box(plus.x, r, "r", "data", "size 32")
    c.arrow(previous.right, update.left, kind="attention")
    c.arrow((bus, 0.9), (update.x, 0.9), update.top, kind="attention")
    c.note(1.75, 1.0, "GAP(x)", fontsize=8)
    c.arrow(update.right, current.left, kind="attention")
    c.arrow(current.top, plus.bottom, kind="attention")
    c.note(plus.x + 0.12, 0.93, "U r, broadcast over positions", ha="left", fontsize=8)
    c.arrow(current.right, (8.9, r), kind="attention")
    c.note(9.0, r, "r to the next\nlocal unit", ha="left")
    return c.finish()


def _hard() -> Figure:
    c = _Canvas(10.5, 3.55, "hard: input-dependent on/off gates on the output channels (the seed's §2.1.4)")
    y = 3.15
    x_in = c.box(0.55, y, "x", "data", r"$C_{in}$×H×W")
    conv = c.box(2.3, y, "conv 3×3 (static)", "layer")
    norm = c.box(3.9, y, "BN", "layer")
    gate = c.op(8.4, y, r"$\odot$")
    out = c.box(9.7, y, "y", "data", r"$C_{out}$×H×W")
    _chain(c, [x_in, conv, norm, gate, out])
    c.note(6.0, y + 0.17, r"$C_{out}$ channels")

    a = 1.55
    gap = c.box(1.3, a, "GAP", "attention", r"→ $C_{in}$")
    fc1 = c.box(2.45, a, "FC", "attention", r"→ max($C_{in}$/4, 16)")
    relu = c.box(3.55, a, "ReLU", "attention")
    fc2 = c.box(4.55, a, "FC", "attention", r"→ z, $C_{out}$ logits")
    sigmoid = c.box(5.75, a, "sigmoid(z)", "attention")
    threshold = c.box(6.95, a, r"$1[\,\cdot > 0.5\,]$", "attention", "forward")
    gates = c.box(gate.x, a, "g", "data", r"$C_{out}$ gates, 0 or 1")
    c.arrow(x_in.bottom, (x_in.x, a), gap.left, kind="attention")
    _chain(c, [gap, fc1, relu, fc2, sigmoid, threshold, gates], kind="attention")
    c.arrow(gates.top, gate.bottom, kind="attention")

    back = 2.3
    c.arrow((gates.x - 0.25, gates.top[1]), (gates.x - 0.25, back), (sigmoid.x, back), sigmoid.top,
            kind="attention", dashed=True)
    c.note((sigmoid.x + gates.x) / 2 - 0.1, back + 0.15, "backward: d sigmoid(z) (straight-through)", fontsize=8.5)

    budget = c.box(gates.x, 0.4, "budget loss: (mean open rate − ρ)², ρ = 0.5", "attention", dashed=True)
    c.arrow(gates.bottom, budget.top, kind="attention", dashed=True)
    c.note(0.2, 0.6, "BN inside the unit (gate_after_norm, the course's setting), so a closed channel is exactly 0;",
           ha="left")
    c.note(0.2, 0.25, "at inference a closed channel (g = 0) is not computed at all.", ha="left")
    return c.finish()


def _dyconv() -> Figure:
    c = _Canvas(10.5, 3.7, "dyconv: dynamic convolution, K kernels mixed per image (Chen et al. 2020)")
    y = 3.35
    x_in = c.box(0.55, y, "x", "data", r"$C_{in}$×H×W")
    conv = c.op(7.7, y, r"$\ast$")
    out = c.box(9.2, y, "y", "data", r"$C_{out}$×H×W")
    c.arrow(x_in.right, conv.left)
    c.arrow(conv.right, out.left)
    c.note(4.2, y + 0.17, "convolution with this image's kernel")

    rows = (2.65, 2.15, 1.4)
    kernels = [c.box(2.4, r, label, "layer", width=0.8) for r, label in zip(rows, ("$W_1$", "$W_2$", "$W_K$"))]
    c.note(2.4, 1.8, "⋮", fontsize=11)
    c.note(1.85, 2.0, "K = 4 kernels\n" r"$C_{out}$×$C_{in}$×k×k", ha="right")
    mix = c.op(6.3, 2.15, r"$\Sigma_k$", radius=0.26)
    for box in kernels:
        c.arrow(box.right, (4.9, box.y), (mix.left[0] + 0.02, mix.y + (box.y - mix.y) * 0.08))
    kernel = c.box(conv.x, 2.15, "W(x)", "data", "one kernel per image")
    c.arrow(mix.right, kernel.left)
    c.arrow(kernel.top, conv.bottom)
    c.note(mix.x, 2.65, r"$W(x) = \Sigma_k\, \pi_k W_k$", fontsize=10, color=_TEXT)

    r = 0.5
    gap = c.box(1.15, r, "GAP", "attention", r"→ $C_{in}$")
    fc1 = c.box(2.3, r, "FC", "attention", r"→ max($C_{in}$/4, 16)")
    relu = c.box(3.4, r, "ReLU", "attention")
    fc2 = c.box(4.35, r, "FC", "attention", "→ K logits")
    softmax = c.box(5.35, r, "softmax(· / T)", "attention")
    weights = c.box(mix.x + 0.75, r, "π", "data", "B×K: K weights per image")
    c.arrow(x_in.bottom, (x_in.x, r), gap.left, kind="attention")
    _chain(c, [gap, fc1, relu, fc2, softmax, weights], kind="attention")
    c.arrow(weights.top, (weights.x, 1.2), (mix.x, 1.2), mix.bottom, kind="attention")
    c.note(8.3, 1.1, 'routing="sigmoid" is CondConv\n(Yang et al. 2019): one FC,\n'
                     "sigmoid(FC(GAP x)), no T;\nthe weights need not sum to 1", ha="left")
    return c.finish()


def _odconv(kernels: int) -> Figure:
    c = _Canvas(11, 3.8, f"{'odconv' if kernels == 1 else 'odconv4x'}: omni-dimensional dynamic convolution, "
                         f"K = {kernels} (Li, Zhou and Yao, ICLR 2022)")
    y = 3.45
    x_in = c.box(0.55, y, "x", "data", r"$C_{in}$×H×W")
    on_input = c.op(2.0, y, r"$\odot$")
    conv = c.op(6.9, y, r"$\ast$")
    on_output = c.op(8.6, y, r"$\odot$")
    out = c.box(9.95, y, "y", "data", r"$C_{out}$×H×W")
    _chain(c, [x_in, on_input, conv, on_output, out])

    k = 2.5
    if kernels == 1:
        stack = c.box(2.95, k, "W", "layer", r"$C_{out}$×$C_{in}$×k×k")
    else:
        stack = c.box(2.95, k, r"$W_1, \dots, W_K$", "layer", rf"K = {kernels} kernels")
    on_kernels = c.op(4.1, k, r"$\odot$")
    kernel = c.box(conv.x, k, r"$W_b$", "data", "one kernel per image")
    c.arrow(stack.right, on_kernels.left)
    if kernels == 1:
        c.arrow(on_kernels.right, kernel.left)
        formula = r"$W_b = \alpha_s \odot W$"
    else:
        mix = c.op(5.6, k, r"$\Sigma_k$", radius=0.26)
        _chain(c, [on_kernels, mix, kernel])
        formula = r"$W_b = \Sigma_k\, \alpha_{w,k}\, \alpha_s \odot W_k$"
    c.arrow(kernel.top, conv.bottom)

    t = 0.45
    gap = c.box(0.95, t, "GAP", "attention", r"→ $C_{in}$")
    fc = c.box(2.3, t, "FC (no bias)", "attention", r"→ max($C_{in}$/16, 16)")
    norm = c.box(3.55, t, "BN", "attention")
    relu = c.box(4.3, t, "ReLU", "attention")
    bus = 0.97
    c.arrow(x_in.bottom, (x_in.x, bus), (gap.x, bus), gap.top, kind="attention")
    _chain(c, [gap, fc, norm, relu], kind="attention")
    c.arrow(relu.top, (relu.x, bus), head=False, kind="attention")
    c.arrow((on_input.x, bus), (on_output.x, bus), head=False, kind="attention")

    h = 1.5
    heads = [(on_input, r"$\alpha_c$: input channel", r"$C_{in}$, sigmoid"),
             (on_kernels, r"$\alpha_s$: spatial", "k×k, sigmoid"),
             (on_output, r"$\alpha_f$: output channel", r"$C_{out}$, sigmoid")]
    if kernels > 1:
        heads.append((mix, r"$\alpha_w$: kernel", "K, softmax"))
    for target, label, shape in heads:
        head = c.box(target.x, h, label, "attention", shape)
        c.arrow((target.x, bus), head.bottom, kind="attention")
        c.arrow(head.top, target.bottom, kind="attention")
    if kernels == 1:
        c.note(5.6, h, "no kernel head\nwhen K = 1", style="italic")
    c.note(5.0, t + 0.1, "each head: FC, logit / T, then its sigmoid or softmax", ha="left")
    c.note(5.0, t - 0.22, formula + r";   $y_b = \alpha_f \odot (W_b \ast (\alpha_c \odot x_b))$", ha="left",
           fontsize=9.5, color=_TEXT)
    return c.finish()


#: the cells of a 3×3 kernel drawn in the orientation diagram: an L, so that every rotation looks different
_KERNEL_GLYPH = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]])


def _glyph(c: _Canvas, x: float, y: float, quarter_turns: int, cell: float = 0.1) -> None:
    """A tiny 3×3 kernel, its lower-left corner at (x, y), rotated by quarter turns counter-clockwise."""
    edge = _KINDS["layer"][1]
    cells = np.rot90(_KERNEL_GLYPH, quarter_turns)
    for row in range(3):
        for col in range(3):
            c.ax.add_patch(Rectangle((x + col * cell, y + (2 - row) * cell), cell, cell, linewidth=0.6,
                                     edgecolor=edge, facecolor=edge if cells[row, col] else "white", zorder=5))


def _orient() -> Figure:
    c = _Canvas(10, 3.55, "orient: one kernel at 4 rotations with orientation pooling (the seed's §2.1.5 text)")
    kernel = c.box(0.85, 3.1, "W", "layer", r"$C_{out}$×$C_{in}$×3×3", width=1.5)
    _glyph(c, kernel.x + 0.25, kernel.y - 0.02, 0, cell=0.085)
    x_in = c.box(0.85, 1.75, "x", "data", r"$C_{in}$×H×W", width=1.5)
    c.note(0.85, 2.45, "one learned kernel,\nshared by the 4 branches")
    bus = 1.85
    rows = (3.25, 2.6, 1.95, 1.3)
    c.arrow(x_in.right, (bus, x_in.y), head=False)
    c.arrow((bus, rows[0]), (bus, rows[-1]), head=False)
    pool = c.box(6.1, 2.275, "max over the 4", "op", "orientations")
    for turns, r in enumerate(rows):
        branch = c.box(3.7, r, f"{90 * turns}°:  " + r"$\mathrm{rot}(W) \ast x$", "layer", width=2.3)
        _glyph(c, branch.left[0] + 0.12, r - 0.15, turns)
        c.arrow((bus, r), branch.left)
        c.arrow(branch.right, (pool.left[0], pool.y + (r - pool.y) * 0.25))
    split = 7.2
    out = c.box(8.75, 2.95, "y", "data", r"$C_{out}$×H×W")
    index = c.box(8.75, 1.6, "winning orientation", "data", r"$C_{out}$×H×W, values 0 to 3")
    c.arrow(pool.right, (split, pool.y), (split, out.y), out.left)
    c.arrow((split, pool.y), (split, index.y), index.left)
    c.note(split + 0.1, out.y + 0.14, "max", ha="left", fontsize=8)
    c.note(split + 0.1, index.y + 0.14, "argmax", ha="left", fontsize=8)
    c.note(index.x, index.bottom[1] - 0.15, "what the unit reports", fontsize=8)
    c.note(5.0, 0.6, r"$y_c(p) = \max_r\, (\mathrm{rot}_r(W_c) \ast x)(p)$, per output channel c and position p;  "
                      "not ODConv, which the seed cites by title", color=_TEXT, fontsize=9)
    c.note(5.0, 0.25, "in 1D (time series) there are two orientations: the kernel and its time-reversal")
    return c.finish()


_DRAWINGS = {
    "base": _base,
    "global": _global,
    "local": _local,
    "hard": _hard,
    "dyconv": _dyconv,
    "odconv": lambda: _odconv(kernels=1),
    "odconv4x": lambda: _odconv(kernels=4),
    "orient": _orient,
}


def unit_diagram(variant: str) -> Figure:
    """The diagram of one variant's conv unit (or, for ``global``, its block), as a closed ``Figure``."""
    if variant not in names():
        raise ValueError(f"no diagram for variant {variant!r}; choose one of {', '.join(names())}")
    return _DRAWINGS[variant]()
