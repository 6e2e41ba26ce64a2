"""Outline augmentation: what it changes in a series and what it keeps."""
import pytest
import torch
from torch.utils.data import TensorDataset

from dynlab.data import OutlineAugment, with_augmentation
from dynlab.data.augment import AUGMENTATIONS


def _series(n=6, length=11):
    x = torch.arange(n * length, dtype=torch.float32).reshape(n, 1, length)
    return TensorDataset(x, torch.arange(n))


def test_mirror_reads_the_outline_backwards_from_the_same_start():
    data = _series()
    mirrored = OutlineAugment(data, max_shift=0, reverse_probability=1.0)
    x, y = mirrored[2]
    original = data[2][0][0]
    expected = torch.stack([original[(-t) % 11] for t in range(11)])
    assert torch.equal(x[0], expected) and x[0, 0] == original[0] and y == 2


def test_shift_is_circular_and_bounded():
    data = _series(length=40)
    shifted = OutlineAugment(data, max_shift=3, reverse_probability=0.0)
    torch.manual_seed(0)
    seen = set()
    for _ in range(60):
        x, _ = shifted[1]
        original = data[1][0][0]
        shift = next(s for s in range(-3, 4) if torch.equal(torch.roll(original, s), x[0]))
        seen.add(shift)
    assert seen == set(range(-3, 4))


def test_values_and_labels_are_kept_and_randomness_is_seeded():
    data = _series()
    augmented = with_augmentation(data, "outline")
    assert isinstance(augmented, OutlineAugment) and len(augmented) == len(data)
    torch.manual_seed(1)
    first = [augmented[i] for i in range(len(data))]
    torch.manual_seed(1)
    second = [augmented[i] for i in range(len(data))]
    for (a, ya), (b, yb), (orig, y) in zip(first, second, (data[i] for i in range(len(data)))):
        assert torch.equal(a, b) and ya == yb == y
        assert torch.equal(a.sort().values, orig.sort().values)  # a rearrangement, nothing new


def test_names_and_bad_settings():
    data = _series()
    assert with_augmentation(data, None) is data
    assert with_augmentation(data, "mirror").max_shift == 0
    assert set(AUGMENTATIONS) == {"outline", "mirror"}
    with pytest.raises(ValueError, match="valid ones: outline, mirror"):
        with_augmentation(data, "rotate")
    with pytest.raises(ValueError, match="max_shift"):
        OutlineAugment(data, max_shift=-1)
    with pytest.raises(ValueError, match="reverse_probability"):
        OutlineAugment(data, reverse_probability=1.5)
    with pytest.raises(ValueError, match="channels, length"):
        OutlineAugment(TensorDataset(torch.zeros(2, 5), torch.zeros(2)))[0]
