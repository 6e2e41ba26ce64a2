"""Each class's test result (dynlab.experiments.per_class) and its table in the study report."""
import math

import torch
from torch import nn
from torch.utils.data import TensorDataset

from dynlab.data import TaskData
from dynlab.experiments import study
from dynlab.experiments.per_class import per_class
from dynlab.metrics import ConfusionMatrix


def test_recall_is_each_classs_share_labelled_as_it_and_nan_for_an_absent_class():
    targets = torch.tensor([0, 0, 0, 0, 1, 1])
    predictions = torch.tensor([0, 0, 0, 1, 1, 0])
    recall = ConfusionMatrix(3, ignore_index=None).update(predictions, targets).recall()
    assert torch.allclose(recall[:2], torch.tensor([0.75, 0.5], dtype=torch.float64))
    assert math.isnan(recall[2])


class AlwaysClassOne(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], self.classes, *x.shape[2:])
        logits[:, 1] = self.scale
        return logits


def _data(test, classes, metric, ignore_index=None):
    shape = tuple(test[0][0].shape)
    return TaskData(train=test, val=test, test=test, num_classes=classes, in_channels=shape[0], dim=len(shape) - 1,
                    sample_shape=shape, metric=metric, ignore_index=ignore_index, name="toy", description="toy",
                    class_names=["a", "b", "c"][:classes])


def test_per_class_accuracy_of_a_model_that_always_answers_one_class():
    test = TensorDataset(torch.randn(6, 4), torch.tensor([0, 1, 1, 0, 1, 0]))
    assert per_class(AlwaysClassOne(3), _data(test, 3, "accuracy")) == {"a": 0.0, "b": 1.0, "c": None}


def test_per_class_iou_leaves_out_ignored_pixels():
    masks = torch.tensor([[[1, 1], [0, 255]]])
    test = TensorDataset(torch.randn(1, 3, 2, 2), masks)
    values = per_class(AlwaysClassOne(2), _data(test, 2, "miou", ignore_index=255))
    assert values == {"a": 0.0, "b": round(2 / 3, 6)}  # b: 2 true positives, 1 background pixel called b


def test_the_report_shows_each_class_per_variant_and_skips_rows_without_a_record():
    rows = [{"variant": "base", "per_class": {"bar": 1.0, "arrow": 0.5}},
            {"variant": "base", "per_class": {"bar": 0.8, "arrow": 0.7}},
            {"variant": "orient", "per_class": {"bar": 0.9, "arrow": 0.4}},
            {"variant": "global"}]
    table = study.per_class_table(rows)
    assert table[0] == "| class | base | orient |"
    assert table[2:] == ["| bar | 90.0 | 90.0 |", "| arrow | 60.0 | 40.0 |"]
    assert study.per_class_table([{"variant": "base"}]) == []
