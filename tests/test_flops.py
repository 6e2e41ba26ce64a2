"""MAC counting: the plain network's published figures, ODConv's published figures, and what plain thop misses."""
import pytest
import thop
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from dynlab import flops, layers
from dynlab.models import resnet18, tsresnet


def test_base_resnet18_matches_torchvision_at_224():
    ours = flops.cost(resnet18("base", 1000), (1, 3, 224, 224))
    theirs = flops.cost(torchvision.models.resnet18(), (1, 3, 224, 224))
    assert ours.params == theirs.params == 11_689_512
    assert ours.macs == theirs.macs
    assert round(ours.macs / 1e9, 2) == 1.81
    assert ours.flops == 2 * ours.macs


@pytest.mark.parametrize("model", [lambda: resnet18("base", 10, stem="small", width=16),
                                   lambda: tsresnet("base", 37), lambda: torchvision.models.resnet18()])
def test_plain_models_agree_with_torch_flop_counter(model):
    model = model().eval()
    shape = (2, 1, 176) if isinstance(model, torch.nn.Module) and hasattr(model, "blocks") else (2, 3, 64, 64)
    ours = flops.cost(model, shape).macs
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(shape))
    assert ours == pytest.approx(counter.get_total_flops() / 2, rel=0.01)


@pytest.mark.parametrize("kernels, params, published_macs", [(1, 11.94e6, 1.838e9), (4, 44.90e6, 1.916e9)])
def test_odconv_resnet18_matches_published_figures(kernels, params, published_macs):
    model = resnet18("odconv", 1000, kernels=kernels)
    result = flops.cost(model, (1, 3, 224, 224))
    assert round(result.params / 1e6, 2) == round(params / 1e6, 2)
    assert result.macs == pytest.approx(published_macs, rel=0.01)


def test_macs_scale_with_batch():
    model = resnet18("dyconv", 10, stem="small", width=8)
    one = flops.cost(model, (1, 3, 16, 16)).macs
    assert flops.cost(model, (3, 3, 16, 16)).macs == 3 * one


class FunctionalConv(torch.nn.Module):
    """A user's own module that convolves with F.conv2d: no hook-based rule knows it."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 4, 3, 3))

    def forward(self, x):
        return torch.nn.functional.conv2d(x, self.weight, padding=1)


def test_counter_sees_a_functional_convolution_inside_a_custom_module():
    model = torch.nn.Sequential(FunctionalConv(), torch.nn.Conv2d(8, 2, 1))
    assert flops.cost(model, (2, 4, 6, 6)).macs == 2 * 36 * (8 * 4 * 9) + 2 * 36 * (2 * 8)


def test_plain_thop_counts_the_algorithm_not_the_layer():
    unit = layers.build("dyconv", 16, 32, 3, padding=1)
    unit.path = "dense"  # runs all 4 kernels as one convolution and mixes the outputs
    x = torch.randn(1, 16, 8, 8)
    conv = 32 * 16 * 9 * 64
    attention = 16 * 16 + 16 * 4  # the two FC layers of the routing function
    aggregation = 4 * 32 * 16 * 9
    plain, _ = thop.profile(unit, inputs=(x,), verbose=False)
    taught, _ = thop.profile(unit, inputs=(x,), custom_ops=flops.thop_custom_ops(), verbose=False)
    assert flops.cost(unit, x).macs == conv + attention + aggregation
    assert taught == conv + attention + aggregation
    assert plain != taught


@pytest.mark.parametrize("variant", layers.names())
def test_thop_taught_agrees_with_cost(variant):
    torch.manual_seed(0)
    model = resnet18(variant, 10, stem="small", width=8).eval()
    x = torch.randn(1, 3, 16, 16)
    taught, _ = thop.profile(model, inputs=(x,), custom_ops=flops.thop_custom_ops(), verbose=False)
    assert int(taught) == flops.cost(model, x).macs


def test_hard_reports_executed_macs_at_the_open_rate():
    torch.manual_seed(0)
    model = resnet18("hard", 10, stem="small", width=8)
    full = flops.cost(model, (2, 3, 16, 16))
    assert full.macs_executed == pytest.approx(full.macs, rel=1e-6)  # gates start open (bias +3)
    for unit in model.modules():
        if isinstance(unit, layers.GatedConv):
            with torch.no_grad():
                unit.gate_logits.bias[::2] = -30.0  # close every other channel
    half = flops.cost(model, (2, 3, 16, 16))
    assert half.macs == full.macs
    assert half.macs_executed < 0.8 * half.macs
    assert flops.cost(resnet18("base", 10), (1, 3, 32, 32)).macs_executed is None


def test_cost_refuses_a_shape_without_batch():
    with pytest.raises(ValueError, match="includes the batch"):
        flops.cost(resnet18("base", 10), (3, 32))


def test_table_names_units():
    rows = flops.table(["base", "odconv"], settings=flops.table_settings()[-1:])
    text = flops.format_table(rows)
    assert "MACs (G)" in text and "FLOPs (G) = 2 x MACs" in text
    assert [r["variant"] for r in rows] == ["base", "odconv"] and rows[0]["mac_ratio"] == 1.0


def test_hard_reports_per_sample_and_union_macs_that_the_skip_path_computes():
    """Disjoint gates: each sample has half its channels open, and together they open all of them."""
    torch.manual_seed(0)
    unit = layers.build("hard", 4, 6, 3, padding=1).eval()
    half = torch.tensor([1.0, -1.0]).repeat(3)  # sample 0 opens the even channels, sample 1 the odd ones
    unit.gate_probabilities = lambda x: torch.sigmoid(8 * torch.stack([half, -half]))[:x.shape[0]]
    result = flops.cost(unit, torch.randn(2, 4, 5, 5))
    conv, gating = 2 * 25 * 6 * 4 * 9, 2 * 6 * 25
    assert result.macs_executed == conv // 2 + gating
    assert result.macs_union == conv + gating  # what one convolution over the batch computes
    one = flops.cost(unit, torch.randn(1, 4, 5, 5))
    assert one.macs_executed == one.macs_union


def test_plain_thop_undercounts_base_and_the_custom_ops_count_it_right():
    """What the README and notebook 01 show: plain thop misses dynlab's units; one argument fixes it."""
    thop = pytest.importorskip("thop")
    model = resnet18("base", 1000)
    x = torch.randn(1, 3, 224, 224)
    plain, _ = thop.profile(model, inputs=(x,), verbose=False)
    taught, _ = thop.profile(resnet18("base", 1000), inputs=(x,), custom_ops=flops.thop_custom_ops(), verbose=False)
    ours = flops.cost(resnet18("base", 1000), (1, 3, 224, 224)).macs
    assert plain < 0.1 * ours and int(taught) == ours and abs(ours - 1.814e9) < 0.005e9
