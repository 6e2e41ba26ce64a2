import math

import pytest
import torch

from dynlab.metrics import (
    ConfusionMatrix,
    accuracy,
    mean_std,
    paired_difference,
    predicted_labels,
    student_t_cdf,
    student_t_quantile,
    topk_correct,
)


def test_topk_on_hand_examples():
    logits = torch.tensor([
        [0.1, 0.5, 0.2, 0.0],   # order 1, 2, 0, 3
        [0.9, 0.0, 0.3, 0.8],   # order 0, 3, 2, 1
        [0.0, 0.1, 0.2, 0.3],   # order 3, 2, 1, 0
    ])
    targets = torch.tensor([1, 3, 0])
    assert topk_correct(logits, targets, 1) == 1
    assert topk_correct(logits, targets, 2) == 2
    assert topk_correct(logits, targets, 3) == 2
    assert topk_correct(logits, targets, 4) == 3
    assert accuracy(logits, targets) == pytest.approx(1 / 3)
    assert accuracy(logits, targets, k=2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be between"):
        accuracy(logits, targets, k=5)


def test_confusion_matrix_hand_example_with_ignore_label():
    targets = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    predictions = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4).update(predictions, targets)
    # counted pixels (target != 255): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0)
    assert cm.total == 6
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    iou = cm.iou()
    assert iou[0].item() == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
    assert iou[1].item() == pytest.approx(2 / 3)  # tp 2, fp 1
    assert iou[2].item() == pytest.approx(1 / 2)  # tp 1, fn 1
    assert math.isnan(iou[3].item())               # class 3 absent from targets and predictions
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)


def test_confusion_matrix_accepts_logits_and_merges_shards():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 6, 6)
    targets = torch.randint(0, 5, (4, 6, 6))
    whole = ConfusionMatrix(5).update(logits, targets)
    parts = ConfusionMatrix(5).update(logits[:1], targets[:1]).merge(ConfusionMatrix(5).update(logits[1:], targets[1:]))
    assert torch.equal(whole.matrix, parts.matrix)
    assert torch.equal(whole.matrix, ConfusionMatrix(5).update(logits.argmax(1), targets).matrix)
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(5).update(logits, torch.full((4, 6, 6), 7))


def test_miou_matches_torchmetrics_macro_jaccard():
    """Same convention as torchmetrics' macro average: classes absent from targets and predictions are left out.

    (torchmetrics gives such a class weight 0 in the macro mean; its per-class output reports 0 for it,
    where ConfusionMatrix.iou() reports NaN.) Class 5 below never occurs; class 4 is only predicted.
    """
    from torchmetrics.classification import MulticlassJaccardIndex

    generator = torch.Generator().manual_seed(1)
    classes = 6
    reference = MulticlassJaccardIndex(num_classes=classes, ignore_index=255, average="macro")
    ours = ConfusionMatrix(classes, ignore_index=255)
    for _ in range(3):
        targets = torch.randint(0, 4, (2, 16, 16), generator=generator)
        targets[torch.rand(2, 16, 16, generator=generator) < 0.2] = 255
        logits = torch.randn(2, classes, 16, 16, generator=generator)
        logits[:, 5] = -10.0  # never predicted
        logits[:, 4] -= 1.5   # predicted sometimes, never a target
        reference.update(logits.argmax(1), targets)
        ours.update(logits, targets)
    iou = ours.iou()
    assert math.isnan(iou[5].item()) and iou[4].item() == 0.0
    assert ours.miou() == pytest.approx(reference.compute().item(), abs=1e-6)


def test_mean_std_uses_population_convention():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert std == pytest.approx(math.sqrt(1.25))  # divide by n; the sample std would be sqrt(5/3)
    assert mean_std([0.7]) == (0.7, 0.0)


@pytest.mark.parametrize("p, df, expected", [
    (0.975, 1, 12.7062047),
    (0.975, 4, 2.7764451),
    (0.975, 9, 2.2621572),
    (0.995, 10, 3.1692727),
    (0.95, 29, 1.6991270),
])
def test_student_t_quantile_against_tables(p, df, expected):
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
    assert student_t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-6)
    assert student_t_cdf(expected, df) == pytest.approx(p, abs=1e-7)


def test_paired_difference_on_a_known_example():
    a = [3.0, 5.0, 7.0, 9.0, 11.0]
    b = [2.0, 3.0, 4.0, 5.0, 6.0]  # differences 1..5: mean 3, sample std sqrt(2.5)
    result = paired_difference(a, b)
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert result.mean == pytest.approx(3.0)
    assert result.std == pytest.approx(math.sqrt(2.5))
    assert (result.low, result.high) == pytest.approx((3 - half, 3 + half), abs=1e-6)
    assert result.n == 5 and result.confidence == 0.95 and result.significant
    assert not paired_difference([1.0, 2.0, 3.0], [2.0, 1.0, 3.0]).significant
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [0.0])


def test_predicted_labels_is_argmax_with_its_ties_and_nans():
    torch.manual_seed(0)
    logits = torch.randint(0, 3, (4, 6, 9, 9)).float()  # few distinct values: many ties
    logits[0, 2, 0, 0] = logits[0, 4, 0, 0] = float("nan")
    for dim in (0, 1, 2, 3):
        assert torch.equal(predicted_labels(logits, dim), logits.argmax(dim))
    assert predicted_labels(logits)[0, 0, 0] == 2  # the first NaN, as argmax
