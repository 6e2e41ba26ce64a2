"""The unit diagrams: one per registered variant, each naming the parts of its mechanism, laid out cleanly."""
import itertools

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from dynlab import layers
from dynlab.diagrams import unit_diagram
from dynlab.viz import figure_png

#: what each diagram must say: the parts of its mechanism (mathtext is matched as written)
KEY_LABELS = {
    "base": ["conv 3×3", "BN", "ReLU", "conv unit", "shortcut", "conv 1×1"],
    "global": ["GAP", "FC", "C → C/16", "C/16 → C", "sigmoid", "one per channel", "⊙", "broadcast"],
    "local": [r"$W_1 \ast x$", r"$W_K \ast x$", "conv 1×1", "softmax over k", "/ T", r"$A_k(p)$", "U r",
              r"\tanh(V", "size 32", "previous unit", "next", "broadcast"],
    "hard": ["conv 3×3 (static)", "GAP", "sigmoid(z)", "0.5", "straight-through", "backward: d sigmoid(z)",
             "budget loss", "ρ", "not computed"],
    "dyconv": ["$W_1$", "$W_K$", "K = 4 kernels", "GAP", "softmax(· / T)", "π", "K weights per image",
               r"\Sigma_k\, \pi_k W_k", "one kernel per image", "CondConv", 'routing="sigmoid"'],
    "odconv": [r"$\alpha_s$: spatial", r"$\alpha_c$: input channel", r"$\alpha_f$: output channel", "GAP", "BN",
               "ReLU", "logit / T", "no kernel head", "K = 1"],
    "odconv4x": [r"$\alpha_s$: spatial", r"$\alpha_c$: input channel", r"$\alpha_f$: output channel",
                 r"$\alpha_w$: kernel", "softmax", "K = 4", r"\alpha_{w,k}"],
    "orient": ["0°", "90°", "180°", "270°", "max over the 4", "argmax", "winning orientation", "time-reversal",
               "not ODConv"],
}

PAPERS = {"base": "He et al. 2016", "global": "Hu et al. 2018", "local": "§2.1.2", "hard": "§2.1.4",
          "dyconv": "Chen et al. 2020", "odconv": "Li, Zhou and Yao", "odconv4x": "Li, Zhou and Yao",
          "orient": "§2.1.5"}


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def _words(fig: Figure) -> str:
    return " ".join(t.get_text().replace("\n", " ") for t in _texts(fig))


def test_every_variant_has_a_diagram_and_its_key_labels():
    assert set(KEY_LABELS) == set(layers.names())


@pytest.mark.parametrize("variant", layers.names())
def test_diagram_names_its_mechanism(variant):
    fig = unit_diagram(variant)
    assert isinstance(fig, Figure)
    assert not plt.fignum_exists(fig.number), "the figure must be closed to pyplot so it shows once"
    words = _words(fig)
    missing = [label for label in KEY_LABELS[variant] if label not in words]
    assert not missing, f"{variant}'s diagram lacks {missing}"
    title = fig._suptitle.get_text()
    assert title.startswith(f"{variant}:") and PAPERS[variant] in title


@pytest.mark.parametrize("variant", layers.names())
def test_diagram_is_a_readable_size_and_its_text_neither_overlaps_nor_leaves_the_page(variant):
    fig = unit_diagram(variant)
    width, height = fig.get_size_inches()
    assert 9 <= width <= 11 and 3 <= height <= 4.6
    fig.canvas.draw()
    page = fig.bbox
    drawing = fig.axes[0]
    boxes = [(t.get_text(), t.get_window_extent()) for t in fig.texts + drawing.texts if t.get_text().strip()]
    boxes += [("the legend", legend.get_window_extent()) for legend in fig.legends]
    for text, box in boxes:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, \
            f"{text!r} is cut off"
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not overlapping, f"texts overlap in {variant}'s diagram: {overlapping}"


def test_only_odconv4x_draws_the_kernel_head():
    assert r"$\alpha_w$" not in _words(unit_diagram("odconv"))
    assert r"$\alpha_w$" in _words(unit_diagram("odconv4x"))
    assert "no kernel head" not in _words(unit_diagram("odconv4x"))


@pytest.mark.parametrize("variant", layers.names())
def test_diagram_renders_to_png(variant):
    png = figure_png(unit_diagram(variant))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ValueError, match="odconv4x") as error:
        unit_diagram("resnet")
    assert all(name in str(error.value) for name in layers.names())
