"""torch.compile traces every variant whole, and the traced model computes what the eager one does.

The ``aot_eager`` backend runs Dynamo and AOTAutograd (graph capture and the traced backward, where
graph breaks and untraceable autograd code show up) without generating kernels, so it is fast enough
for CI; ``python -m benchmarks compile`` runs inductor itself, on CPU or CUDA. Compiling takes
seconds a model: these tests are marked slow.
"""
import pytest
import torch

from dynlab import layers
from dynlab.kernels.compile_check import check_variant, format_rows
from dynlab.models.resnet import ResNet

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("variant", layers.names())
def test_every_variant_compiles_whole_for_training_and_inference_and_matches_eager(variant):
    model = ResNet(*layers.factories(variant), num_classes=10, width=8, blocks=(1, 1, 1, 1), dropout=0.0)
    row = check_variant(variant, "cpu", size=32, batch=4, backend="aot_eager", model=model)
    assert row["passed"], format_rows([row])
    assert row["grad_error"] < 1e-5 and row["output_error"] < 1e-5 and row["loss_error"] < 1e-6


@pytest.mark.parametrize("variant", ["dyconv", "odconv4x"])
def test_time_series_variants_compile_too(variant):
    model = ResNet(*layers.factories(variant), num_classes=10, dim=1, in_channels=3, width=8, blocks=(1, 1, 1, 1),
                   dropout=0.0)
    row = check_variant(variant, "cpu", size=16, batch=4, backend="aot_eager", model=model)
    assert row["passed"], format_rows([row])
    assert row["grad_error"] < 1e-5, format_rows([row])  # aot_eager reorders nothing: gradients judged too


def test_in_float64_the_gradients_are_judged_too():
    model = ResNet(*layers.factories("odconv4x"), num_classes=10, width=8, blocks=(1, 1, 1, 1), dropout=0.0)
    row = check_variant("odconv4x", "cpu", size=32, batch=4, backend="aot_eager", precision="float64", model=model)
    assert row["gradients_judged"] and row["passed"], format_rows([row])
    assert row["grad_error"] < 1e-12
    with pytest.raises(ValueError, match="precision"):
        check_variant("base", "cpu", precision="float16")


def test_a_graph_break_in_training_fails_the_check(monkeypatch):
    """fullgraph=True is what makes the check mean something: a break must raise, not fall back."""
    from dynlab.layers import dyconv

    def breaking_attention(self, x):
        torch._dynamo.graph_break()
        return torch.softmax(self.attention_logits(torch.relu(self.attention_hidden(x.mean((2, 3))))), dim=1)

    monkeypatch.setattr(dyconv.DynamicConv, "kernel_attention", breaking_attention)
    model = ResNet(*layers.factories("dyconv"), num_classes=10, width=8, blocks=(1, 1, 1, 1), dropout=0.0)
    with pytest.raises(Exception, match="graph_break|Graph break|graph break"):
        check_variant("dyconv", "cpu", size=32, batch=4, backend="aot_eager", model=model)


@pytest.mark.parametrize("variant", ["dyconv", "local", "hard", "orient"])
def test_the_plain_layers_compile_whole_too(variant):
    """The layers' own forwards (kernels switched off) are plain ops: they trace without a break."""
    from dynlab import kernels

    with kernels.disabled():
        model = ResNet(*layers.factories(variant), num_classes=10, width=8, blocks=(1, 1, 1, 1), dropout=0.0)
    row = check_variant(variant, "cpu", size=32, batch=4, backend="aot_eager", model=model)
    assert row["passed"], format_rows([row])
