"""Has a model's attention been trained, and does it depend on the input? Measured on the test split.

For every unit that records attention (``dynlab.layers.collect_attention``), over the test samples:

- **spread**: the standard deviation across samples of each attention entry, averaged over the entries.
  An untrained soft attention sits at its initial value for every input (spread near 0).
- **probe**: a linear probe (multinomial logistic regression, 5-fold cross-validated on the test split)
  predicting the sample's label from its attention vector, against chance (the commonest label's
  share). A segmentation sample's label is its largest foreground class. Per-pixel attention (``local``)
  is averaged over a 2x2 grid of the map; ``hard``'s gates are its 0/1 vector.
- ``hard``: the mean open rate against the budget, the spread of the per-class open rates (largest minus
  smallest class mean), and the MACs per sample executed (each sample's own open channels) and of the
  batch's union (what the skip path computes), beside the dense count.
- ``orient``: for the classes of an orientation pair, the total-variation distance between their
  histograms of winning orientations in a unit, channel by channel, averaged over the unit's channels
  (0: the unit cannot tell them apart, 1: disjoint).

:func:`attention_summary` gives the model's best unit for each figure; the study report prints it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import flops, layers
from ..data.splits import stratified_kfold

#: class-name pairs of the synthetic classification task that differ only by a 90-degree turn
ORIENTATION_PAIRS = (("horizontal bar", "vertical bar"), ("horizontal stripes", "vertical stripes"))
PROBE_FOLDS = 5


def sample_labels(target: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """One label per sample: the class itself, or for a mask (B, H, W) its largest foreground class
    (0 when the mask holds only background)."""
    if target.dim() == 1:
        return target
    flat = target.flatten(1).long()
    if ignore_index is not None:
        flat = torch.where(flat == ignore_index, torch.zeros_like(flat), flat)
    counts = F.one_hot(flat, int(flat.max()) + 1).sum(1)
    counts[:, 0] = 0
    labels = counts.argmax(1)
    return torch.where(counts.amax(1) > 0, labels, torch.zeros_like(labels))


def _vector(kind: str, value: torch.Tensor) -> torch.Tensor:
    """A unit's recorded attention of one batch as one vector per sample."""
    if kind == "pixel":  # (B, K, *S): the kernel weights on a coarse grid of the map
        pool = F.adaptive_avg_pool2d if value.dim() == 4 else F.adaptive_avg_pool1d
        return pool(value, 2).flatten(1)
    return value.flatten(1).float()


@torch.no_grad()
def collect(model: nn.Module, dataset: Dataset, batch_size: int = 64, ignore_index: int | None = None,
            device=None) -> tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor]:
    """``({unit: {kind: (N, D) vectors}}, labels)`` over ``dataset``; ``orientation`` is kept whole, as uint8."""
    device = device or next(model.parameters()).device
    gathered: dict[str, dict[str, list[torch.Tensor]]] = {}
    labels = []
    for x, target in DataLoader(dataset, batch_size=batch_size):
        recorded = layers.collect_attention(model, x.to(device))
        for unit, kinds in recorded.items():
            for kind, value in kinds.items():
                # winning orientations kept whole, but as bytes: (N, C, *S) int64 maps of every unit
                # over a test split ran to hundreds of MB (Binder's box has 1-2 GB)
                vector = value.to(torch.uint8) if kind == "orientation" else _vector(kind, value)
                gathered.setdefault(unit, {}).setdefault(kind, []).append(vector)
        labels.append(sample_labels(target, ignore_index))
    vectors = {unit: {kind: torch.cat(parts) for kind, parts in kinds.items()} for unit, kinds in gathered.items()}
    return vectors, torch.cat(labels)


def spread(vectors: torch.Tensor) -> float:
    """Mean over the entries of their standard deviation across samples."""
    return float(vectors.float().std(0, unbiased=False).mean())


def chance(labels: torch.Tensor) -> float:
    """The commonest label's share: what always answering it scores."""
    return float(torch.bincount(labels).max()) / len(labels)


def probe_accuracy(vectors: torch.Tensor, labels: torch.Tensor, folds: int = PROBE_FOLDS, seed: int = 0,
                   weight_decay: float = 1e-3, steps: int = 100) -> float:
    """Cross-validated accuracy of a multinomial logistic regression from ``vectors`` to ``labels``.

    Features are standardised on each training fold; the probe is fitted with L-BFGS and a small L2
    penalty. Classes with fewer samples than folds are left out (they cannot be stratified).
    """
    labels = labels.long()
    counts = torch.bincount(labels)
    keep = counts[labels] >= folds
    x, y = vectors[keep].double(), labels[keep]
    classes = int(y.max()) + 1 if len(y) else 0
    if classes < 2:
        return float("nan")
    correct = 0
    for train, test in stratified_kfold(y.numpy(), k=folds, seed=seed):
        train, test = torch.as_tensor(train), torch.as_tensor(test)
        mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
        xtr, xte = (x[train] - mean) / std, (x[test] - mean) / std
        weight, bias = _fit_logistic(xtr, F.one_hot(y[train], classes).double(), weight_decay, steps)
        correct += int(((xte @ weight + bias).argmax(1) == y[test]).sum())
    return correct / len(y)


def _fit_logistic(x: torch.Tensor, targets: torch.Tensor, weight_decay: float, steps: int):
    """Weight and bias minimising the mean cross-entropy of softmax(x W + b) against one-hot ``targets``
    plus ``weight_decay`` * |W|^2, by L-BFGS.

    The loss and its gradient are written out (d loss / d logits = (softmax - targets) / n), not taken by
    autograd, and L-BFGS keeps the last 10 steps (scipy's default), not torch's 100: the probe runs for
    every unit of every cell of a study, and with torch's defaults its Python overhead made the
    measurement take longer than some cells' training.
    """
    n = len(x)
    weight = torch.zeros(x.shape[1], targets.shape[1], dtype=x.dtype)
    bias = torch.zeros(targets.shape[1], dtype=x.dtype)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        log_p = torch.log_softmax(x @ weight + bias, 1)
        loss = -(log_p * targets).sum() / n + weight_decay * weight.pow(2).sum()
        d_logits = (log_p.exp() - targets) / n
        weight.grad = x.T @ d_logits + 2 * weight_decay * weight
        bias.grad = d_logits.sum(0)
        return loss

    optimizer.step(closure)
    return weight, bias


def orientation_distance(winners: torch.Tensor, labels: torch.Tensor, pair: tuple[int, int],
                         orientations: int) -> float:
    """Total-variation distance between the two classes' histograms of winning orientations, channel by
    channel (the mean over the unit's channels): ``winners`` is ``(N, C, *S)``.

    Each channel's orientations are rotations of its own kernel, so orientation r of one channel and
    of another are different directions; a histogram pooled over channels would mix them.
    """
    histograms = []
    for label in pair:
        chosen = winners[labels == label]
        if len(chosen) == 0:
            return float("nan")
        per_channel = chosen.transpose(0, 1).reshape(chosen.shape[1], -1).long()  # (C, N * positions)
        counts = F.one_hot(per_channel, orientations).sum(1).double()  # (C, R)
        histograms.append(counts / counts.sum(1, keepdim=True))
    return 0.5 * float((histograms[0] - histograms[1]).abs().sum(1).mean())


def attention_summary(model: nn.Module, dataset: Dataset, *, class_names=None, ignore_index: int | None = None,
                      batch_size: int = 64) -> dict:
    """The figures of the module doc for ``model`` on ``dataset`` (its test split), as a flat dict.

    Keys present depend on what the model records: ``spread``/``spread_unit`` (the unit with the largest
    spread), ``probe``/``probe_unit``/``chance`` (the unit whose probe scores best), ``open_rate``,
    ``budget``, ``class_open_range``, ``macs``/``macs_executed``/``macs_union`` (hard), and
    ``orientation_tv``/``orientation_unit`` (orient, when the classes hold an orientation pair).
    Returns ``{}`` for a model without attention (``base``).
    """
    was_training = model.training
    model.eval()
    try:
        vectors, labels = collect(model, dataset, batch_size, ignore_index)
        summary: dict = {}
        if not vectors:
            return summary
        soft = {(unit, kind): v for unit, kinds in vectors.items() for kind, v in kinds.items()
                if kind != "orientation"}
        if soft:
            spreads = {key: spread(v) for key, v in soft.items()}
            widest = max(spreads, key=spreads.get)
            summary.update(spread=round(spreads[widest], 4), spread_unit=".".join(widest))
            probes = {}
            for unit, kinds in vectors.items():
                parts = [v for kind, v in kinds.items() if kind != "orientation"]
                if parts:
                    probes[unit] = probe_accuracy(torch.cat(parts, 1), labels)
            probes = {unit: value for unit, value in probes.items() if not math.isnan(value)}
            if probes:  # none where too few samples per class to cross-validate
                best = max(probes, key=probes.get)
                summary.update(probe=round(probes[best], 4), probe_unit=best, chance=round(chance(labels), 4))
        gates = [kinds["gates"] for kinds in vectors.values() if "gates" in kinds]
        if gates:
            summary.update(_gate_figures(model, dataset, gates, labels, batch_size))
        winners = {unit: kinds["orientation"] for unit, kinds in vectors.items() if "orientation" in kinds}
        if winners and class_names:
            summary.update(_orientation_figures(model, winners, labels, list(class_names)))
        return summary
    finally:
        model.train(was_training)


def _gate_figures(model, dataset, gates, labels, batch_size) -> dict:
    every = torch.cat(gates, 1)  # (N, all gated channels)
    per_sample = every.mean(1)
    class_means = [float(per_sample[labels == c].mean()) for c in labels.unique()]
    budgets = [u.budget for u in model.modules() if hasattr(u, "budget") and hasattr(u, "gate_logits")]
    x = torch.stack([dataset[i][0] for i in range(min(batch_size, len(dataset)))])
    cost = flops.cost(model, x.to(next(model.parameters()).device))
    return {"open_rate": round(float(per_sample.mean()), 4), "budget": budgets[0] if budgets else None,
            "class_open_range": round(max(class_means) - min(class_means), 4),
            "macs": cost.macs // len(x), "macs_executed": cost.macs_executed // len(x),
            "macs_union": cost.macs_union // len(x)}


def _orientation_figures(model, winners, labels, class_names) -> dict:
    pairs = [(class_names.index(a), class_names.index(b)) for a, b in ORIENTATION_PAIRS
             if a in class_names and b in class_names]
    if not pairs:
        return {}
    orientations = max(getattr(u, "orientations", 4) for u in model.modules() if hasattr(u, "orientations"))
    distances = {(unit, pair): orientation_distance(w, labels, pair, orientations)
                 for unit, w in winners.items() for pair in pairs}
    best = max(distances, key=lambda k: -1 if math.isnan(distances[k]) else distances[k])
    unit, pair = best
    return {"orientation_tv": round(distances[best], 4), "orientation_unit": unit,
            "orientation_pair": f"{class_names[pair[0]]} / {class_names[pair[1]]}"}


def meets_goals(summary: dict, variant: str) -> bool | None:
    """The issue's bar for trained, input-dependent attention (None where the variant has no figure)."""
    if variant == "hard" and "open_rate" in summary:
        return (abs(summary["open_rate"] - summary["budget"]) <= 0.1 and summary["class_open_range"] >= 0.05
                and summary["macs_executed"] < summary["macs"])
    if variant == "orient":
        return None if "orientation_tv" not in summary else summary["orientation_tv"] >= 0.2
    if "probe" in summary:
        return summary["spread"] >= 0.05 and summary["probe"] >= 3 * summary["chance"]
    return None


def as_numbers(summary: dict) -> dict:
    """The summary with numpy scalars turned into Python numbers (for a JSON row)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in summary.items()}
