"""Metrics: accuracy, top-k, confusion-matrix IoU, k-fold statistics and paired comparisons.

Everything here works on plain tensors and numbers, so the training engine, the study and the
notebooks all compute a metric the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

IGNORE_INDEX = 255


# -- classification ----------------------------------------------------------------------------
def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> int:
    """How many samples have their target among the ``k`` highest logits.

    ``logits`` is (N, C), ``targets`` is (N,). Ties are broken by ``torch.topk``'s order.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, classes), got {tuple(logits.shape)}")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be between 1 and the number of classes ({logits.shape[1]}), got {k}")
    top = logits.topk(k, dim=1).indices
    return int((top == targets.reshape(-1, 1)).any(dim=1).sum())


def accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """Top-k accuracy in [0, 1] (k = 1 is the usual accuracy)."""
    if targets.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return topk_correct(logits, targets, k) / targets.numel()


# -- segmentation ------------------------------------------------------------------------------
def predicted_labels(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the largest logit along ``dim``: ``logits.argmax(dim)``, the first on ties.

    Computed as ``max(dim).indices``, which gives the same indices. On the CPU, ``argmax`` over the
    class dimension of a segmentation batch (N, C, H, W), a dimension that is neither first nor last,
    takes a slow strided path: in training, where every batch's pixels are counted, it cost as much as
    a fifth of the course's segmentation step.
    """
    return logits.max(dim=dim).indices


class ConfusionMatrix:
    """Accumulates a (classes x classes) confusion matrix: rows are targets, columns predictions.

    ``update`` takes logits (N, C, *S) or predicted labels (N, *S) with targets (N, *S); pixels whose
    target is ``ignore_index`` are left out. Summing the matrices of several shards (``merge``, or an
    all-reduce of ``matrix``, which lives on ``device``) gives exactly the matrix of the whole data set, which averaging
    per-shard mIoUs would not.

    mIoU convention: a class counts when it is present in the targets or in the predictions
    (TP + FP + FN > 0). A class that appears in neither has an undefined IoU (0 / 0) and is left out
    of the mean rather than counted as 0 or 1. ``iou()`` reports it as NaN.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX,
                 device: str | torch.device = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> "ConfusionMatrix":
        if outputs.dim() == targets.dim() + 1:
            if outputs.shape[1] != self.num_classes:
                raise ValueError(f"logits have {outputs.shape[1]} classes, the matrix {self.num_classes}")
            predictions = predicted_labels(outputs)
        else:
            predictions = outputs
        if predictions.shape != targets.shape:
            raise ValueError(
                f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape"
            )
        predictions = predictions.reshape(-1).long().to(self.matrix.device)
        targets = targets.reshape(-1).long().to(self.matrix.device)
        if self.ignore_index is not None:
            keep = targets != self.ignore_index
            predictions, targets = predictions[keep], targets[keep]
        bad = (targets < 0) | (targets >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"target label {int(targets[bad][0])} is outside 0..{self.num_classes - 1} "
                f"(and is not the ignore label {self.ignore_index})"
            )
        if predictions.numel() and (predictions.min() < 0 or predictions.max() >= self.num_classes):
            raise ValueError(f"predicted labels must lie in 0..{self.num_classes - 1}")
        cells = targets * self.num_classes + predictions
        self.matrix += torch.bincount(cells, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix into a {self.num_classes}-class one")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def reset(self) -> None:
        self.matrix.zero_()

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def iou(self) -> torch.Tensor:
        """Per-class IoU = TP / (TP + FP + FN), NaN for a class absent from targets and predictions."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))

    def recall(self) -> torch.Tensor:
        """Per-class share of the class's samples (or pixels) labelled as it: TP / (TP + FN), which for
        classification is the class's accuracy; NaN for a class absent from the targets."""
        m = self.matrix.double()
        support = m.sum(1)
        return torch.where(support > 0, m.diag() / support.clamp(min=1), torch.full_like(support, float("nan")))

    def miou(self) -> float:
        """Mean IoU over the classes present in the targets or the predictions (see the class doc)."""
        iou = self.iou()
        present = ~iou.isnan()
        if not present.any():
            return float("nan")
        return float(iou[present].mean())

    def pixel_accuracy(self) -> float:
        """Correctly labelled pixels over all counted (non-ignored) pixels."""
        total = self.total
        return float(self.matrix.diag().sum()) / total if total else float("nan")


# -- statistics over folds and seeds -----------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and POPULATION standard deviation (divide by n, not n - 1).

    This is the seed's convention for its 10-fold results, so our numbers compare with its tables;
    for a confidence interval use ``paired_difference``, which uses the sample statistics.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(variance)


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with an integer number of degrees of freedom.

    Exact finite series (Abramowitz and Stegun 26.7.3-4) in theta = atan(t / sqrt(df)), so the kit
    needs no scipy.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    df = int(df)
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        term, series = 1.0, 1.0 if df > 1 else 0.0
        for j in range(1, (df - 1) // 2):  # terms 2/3 c^2, (2*4)/(3*5) c^4, ...
            term *= c2 * (2 * j) / (2 * j + 1)
            series += term
        inside = 2 / math.pi * (theta + s * math.cos(theta) * series)
    else:
        term, series = 1.0, 1.0
        for j in range(1, df // 2):  # terms 1/2 c^2, (1*3)/(2*4) c^4, ...
            term *= c2 * (2 * j - 1) / (2 * j)
            series += term
        inside = s * series
    # inside = P(|T| <= |t|)
    return 0.5 + math.copysign(inside / 2, t)


def student_t_quantile(p: float, df: int) -> float:
    """The t such that P(T <= t) = p, by bisection on ``student_t_cdf`` (to double precision)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a - b over matched runs, with its confidence interval."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int
    std: float  # sample standard deviation of the differences (n - 1)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%} CI, n={self.n})"


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Compare two methods run on the same seeds or folds: a[i] and b[i] belong together.

    The interval is mean(d) +- t_{(1+confidence)/2, n-1} * s_d / sqrt(n) with d = a - b and s_d the
    sample standard deviation. Pairing removes what the two runs share (the fold's difficulty, the
    seed's luck), so it is narrower than comparing two independent means. Needs n >= 2.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need the same length, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        raise ValueError(f"a confidence interval needs at least 2 pairs, got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    mean = sum(d) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    half = student_t_quantile((1 + confidence) / 2, n - 1) * std / math.sqrt(n)
    return PairedDifference(mean, mean - half, mean + half, confidence, n, std)
