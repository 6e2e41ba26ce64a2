"""The attention figures of the study report and the trivial baselines, on cases with known answers."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from dynlab.data import load_task
from dynlab.experiments import attention
from dynlab.experiments.baselines import near_baseline, trivial_baseline
from dynlab.models import resnet18


def test_a_mask_is_labelled_by_its_largest_foreground_class():
    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    masks[0, :1] = 2          # 4 pixels of class 2
    masks[0, 1:2, :3] = 1     # 3 pixels of class 1
    masks[1, :, :] = 255      # nothing but ignored pixels
    masks[2, 0, 0] = 3
    assert attention.sample_labels(masks, ignore_index=255).tolist() == [2, 0, 3]
    assert attention.sample_labels(torch.tensor([4, 1])).tolist() == [4, 1]


def test_spread_is_zero_for_attention_that_ignores_the_input():
    assert attention.spread(torch.full((10, 3), 0.5)) == 0.0
    assert attention.spread(torch.tensor([[0.0], [1.0]])) == pytest.approx(0.5)


def test_the_probe_reads_separable_attention_and_not_noise():
    torch.manual_seed(0)
    labels = torch.arange(200) % 4
    separable = torch.nn.functional.one_hot(labels, 4).double() + 0.1 * torch.randn(200, 4, dtype=torch.float64)
    noise = torch.randn(200, 4, dtype=torch.float64)
    assert attention.probe_accuracy(separable, labels) > 0.95
    assert attention.probe_accuracy(noise, labels) < 0.45
    assert attention.chance(labels) == 0.25


def test_orientation_distance_is_zero_for_equal_histograms_and_one_for_disjoint_ones():
    labels = torch.tensor([0, 0, 1, 1])
    same = torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]])
    disjoint = torch.tensor([[0, 0], [0, 0], [2, 2], [2, 2]])
    assert attention.orientation_distance(same, labels, (0, 1), 4) == 0.0
    assert attention.orientation_distance(disjoint, labels, (0, 1), 4) == 1.0



def test_orientation_distance_compares_each_channel_with_itself():
    # (N, C, positions): class 0's channel 0 wins orientation 0 and channel 1 orientation 1; class 1's
    # the other way round. Pooled over channels the histograms are equal; channel by channel disjoint.
    labels = torch.tensor([0, 1])
    winners = torch.tensor([[[0, 0], [1, 1]], [[1, 1], [0, 0]]])
    assert attention.orientation_distance(winners, labels, (0, 1), 4) == 1.0
    half = torch.tensor([[[0, 0], [1, 1]], [[1, 1], [1, 1]]])  # only channel 0 differs
    assert attention.orientation_distance(half, labels, (0, 1), 4) == 0.5


def _images(n=24, classes=3):
    torch.manual_seed(1)
    return TensorDataset(torch.randn(n, 3, 16, 16), torch.arange(n) % classes)


def test_a_model_without_attention_has_no_figures_and_dyconv_has_all_soft_ones():
    data = _images()
    assert attention.attention_summary(resnet18("base", 3, stem="small", width=8).eval(), data) == {}
    summary = attention.attention_summary(resnet18("dyconv", 3, stem="small", width=8), data)
    assert {"spread", "spread_unit", "probe", "probe_unit", "chance"} <= set(summary)
    assert summary["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert attention.meets_goals(summary, "dyconv") in (True, False)


def test_hard_figures_count_fewer_macs_when_gates_close():
    data = _images()
    shut = resnet18("hard", 3, stem="small", width=8, gate_bias=-10.0)  # every gate closed
    summary = attention.attention_summary(shut, data)
    assert summary["open_rate"] == 0.0 and summary["budget"] == 0.5
    assert summary["macs_executed"] < summary["macs"] and summary["macs_union"] < summary["macs"]
    assert attention.meets_goals(summary, "hard") is False  # 0.0 is not within 0.1 of the budget 0.5
    opened = attention.attention_summary(resnet18("hard", 3, stem="small", width=8, gate_bias=10.0), data)
    assert opened["open_rate"] == 1.0 and opened["macs_executed"] == opened["macs"]


def test_orient_figures_need_an_orientation_pair_among_the_classes():
    data = _images(classes=2)
    model = resnet18("orient", 2, stem="small", width=8)
    assert "orientation_tv" not in attention.attention_summary(model, data, class_names=["a", "b"])
    summary = attention.attention_summary(model, data, class_names=["horizontal bar", "vertical bar"])
    assert 0.0 <= summary["orientation_tv"] <= 1.0 and summary["orientation_pair"] == "horizontal bar / vertical bar"


def test_trivial_baselines_are_computed_from_the_data():
    shapes = load_task("classification", profile="quick", limit=60)
    answer = trivial_baseline(shapes)
    assert answer["name"] == "commonest class" and 0.0 < answer["value"] < 0.3
    scenes = load_task("segmentation", profile="quick", limit=20)
    masks = torch.stack([scenes.test[i][1] for i in range(len(scenes.test))])
    present = len(masks.unique())
    background = float((masks == 0).float().mean())
    assert trivial_baseline(scenes)["value"] == pytest.approx(background / present, abs=1e-6)
    assert near_baseline(0.14, 0.10) and not near_baseline(0.16, 0.10)


def test_the_study_table_judges_the_goal_on_the_mean_and_counts_the_runs_that_meet_it():
    from dynlab.experiments.study import attention_table

    def row(variant, spread, probe):
        return {"variant": variant, "attention": {"spread": spread, "spread_unit": "u", "probe": probe,
                                                  "probe_unit": "u", "chance": 0.2}}
    # mean spread 0.06 meets 0.05 though one run of three does not; mean 0.04 fails though one run meets it
    rows = [row("global", 0.07, 0.8), row("global", 0.07, 0.8), row("global", 0.04, 0.8),
            row("dyconv", 0.06, 0.8), row("dyconv", 0.03, 0.8), row("dyconv", 0.03, 0.8)]
    lines = {line.split(" | ")[0].strip("| "): line for line in attention_table(rows)[2:]}
    assert lines["global"].endswith("| yes (2/3 runs) |")
    assert lines["dyconv"].endswith("| no (1/3 runs) |")
    # the probe counts too: a mean probe below 3x chance fails whatever the spread
    assert attention_table([row("local", 0.2, 0.5)])[2].endswith("| no (0/1 runs) |")


def test_the_probe_stops_where_the_penalised_loss_is_flat():
    # its gradient is written out by hand: at the point L-BFGS returns, autograd's gradient must vanish
    torch.manual_seed(0)
    x = torch.randn(120, 6, dtype=torch.float64)
    labels = (x[:, 0] + 0.5 * torch.randn(120, dtype=torch.float64) > 0).long() + (x[:, 1] > 1).long()
    targets = torch.nn.functional.one_hot(labels, 3).double()
    weight, bias = attention._fit_logistic(x, targets, weight_decay=1e-3, steps=100)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x @ weight + bias, labels) + 1e-3 * weight.pow(2).sum()
    loss.backward()
    assert weight.grad.abs().max() < 1e-5 and bias.grad.abs().max() < 1e-5
    assert weight.abs().max() > 0.1  # it moved from its zero start


def test_a_trained_cell_measures_its_attention_when_its_row_is_written():
    from dynlab.experiments import Cell, train_cell

    run = train_cell(Cell("classification", "dyconv", profile="quick"), epochs=1, limit=60, quiet=True, device="cpu")
    assert run.attention is None  # a notebook that retrains never pays for the probes
    figures = run.row()["attention"]
    expected = attention.as_numbers(attention.attention_summary(
        run.model, run.data.test, class_names=run.data.class_names, batch_size=32))
    assert figures == expected and "probe" in figures
    assert run.measure_attention() is figures  # measured once
