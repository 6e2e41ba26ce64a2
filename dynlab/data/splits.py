"""Seeded, stratified index splits shared by the loaders (validation hold-out, k-fold)."""
from __future__ import annotations

from typing import Iterator

import numpy as np


def _by_class(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of each class, shuffled, classes in sorted order."""
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]


def stratified_split(labels, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``round(fraction * N)`` held out, class by class.

    Each class gives ``floor(fraction * n_c)``; the few left to reach the total go to the classes
    with the largest remainders. A class never gives its last member, so tiny classes (Adiac has
    classes of 4) stay in the kept part. Both outputs are sorted.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    groups = _by_class(labels, rng)
    sizes = np.array([len(g) for g in groups])
    share = fraction * sizes
    take = np.minimum(np.floor(share).astype(int), sizes - 1)
    missing = int(round(fraction * len(labels))) - int(take.sum())
    order = np.argsort(-(share - take), kind="stable")
    for i in order:
        if missing <= 0:
            break
        if take[i] < sizes[i] - 1:
            take[i] += 1
            missing -= 1
    held = np.concatenate([g[:t] for g, t in zip(groups, take)] + [np.empty(0, int)])
    kept = np.concatenate([g[t:] for g, t in zip(groups, take)] + [np.empty(0, int)])
    return np.sort(kept).astype(np.int64), np.sort(held).astype(np.int64)


def stratified_kfold(labels, k: int = 10, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for k folds that each hold about 1/k of every class.

    Each class is shuffled and dealt round-robin into the folds, continuing where the previous
    class stopped, so fold sizes differ by at most one even when classes are smaller than k.
    """
    labels = np.asarray(labels)
    if k < 2 or k > len(labels):
        raise ValueError(f"k must be between 2 and the number of samples ({len(labels)}), got {k}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    start = 0
    for group in _by_class(labels, rng):
        fold_of[group] = (start + np.arange(len(group))) % k
        start = (start + len(group)) % k
    everything = np.arange(len(labels))
    for fold in range(k):
        test = everything[fold_of == fold]
        yield everything[fold_of != fold], test


def seeded_subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """The first ``limit`` of a seeded permutation of ``range(n)`` (sorted), or all of them."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])
