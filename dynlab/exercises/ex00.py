"""Self-checks for notebook 00 (start here).

- ``check_1(pairs)``: the classes a network blind to orientation would confuse.
- ``check_2(ratio)``: how many times more parameters the full profile's classification network has.
- ``check_3(accuracy)``: Adiac's commonest-training-class baseline on its standard test split.

Exercise 4 is a discussion; its worked answer is in ``notebooks/solutions/00_start_here.ipynb``.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import close, is_number, number, verdict

#: the two profiles exercise 2 compares
QUICK, FULL = "quick", "full"


def _class_names() -> list[str]:
    from .. import experiments

    return list(experiments.load_data("classification", "synthetic", QUICK, limit=1).class_names)


def _shape_mask(name: str, side: int = 129) -> np.ndarray:
    """The class's shape, centred and unturned, on a square grid symmetric about its centre."""
    from ..data.synthetic import SHAPES

    coords = np.linspace(-1.0, 1.0, side, dtype=np.float32)
    u, v = coords[None, :], coords[:, None]  # u across, v down, as the generator draws them
    return np.asarray(SHAPES[name](u, v, np.float32(0.8), np.float32(0.25), np.float32(0.0)))


def _quarter_turns_apart(a: np.ndarray, b: np.ndarray) -> int | None:
    """How many quarter turns take shape ``a`` onto shape ``b`` (1, 2 or 3), or None if none does."""
    for turns in (1, 2, 3):
        turned = np.rot90(a, turns)
        overlap = (turned & b).sum() / max((turned | b).sum(), 1)
        if overlap > 0.95:
            return turns
    return None


def rotated_pairs() -> dict[frozenset, int]:
    """Pairs of the classification task's classes whose shapes are turned copies of each other,
    with the quarter turns between them: what a network blind to orientation cannot tell apart."""
    names = _class_names()
    masks = {name: _shape_mask(name) for name in names}
    pairs = {}
    for a, b in itertools.combinations(names, 2):
        turns = _quarter_turns_apart(masks[a], masks[b])
        if turns is not None:
            pairs[frozenset((a, b))] = turns
    return pairs


def _as_pairs(answer) -> set[frozenset] | None:
    try:
        pairs = {frozenset(str(name).strip().lower() for name in pair) for pair in answer}
    except TypeError:
        return None
    return pairs if pairs and all(len(pair) == 2 for pair in pairs) else None


def _pair_text(pair: frozenset) -> str:
    return " / ".join(sorted(pair))


def check_1(pairs) -> bool:
    """Exercise 1: the pairs of classes that differ only by a turn, e.g. ``[("disc", "ring"), ...]``."""
    given = _as_pairs(pairs)
    if given is None:
        return verdict(False, "", 'give a list of pairs of class names, e.g. [("disc", "ring"), ("square", "ring")]')
    names = set(_class_names())
    unknown = sorted({name for pair in given for name in pair} - names)
    if unknown:
        return verdict(False, "", f"{', '.join(map(repr, unknown))} is not a class here; the classes are "
                                  f"{', '.join(sorted(names))}")
    expected = rotated_pairs()
    turns_text = {1: "a quarter turn", 2: "a half turn", 3: "a quarter turn"}
    extra = given - set(expected)
    if extra:
        return verdict(False, "", f"{_pair_text(next(iter(extra)))} do not become each other when turned; a network "
                                  "blind to orientation can still tell them apart")
    missing = set(expected) - given
    if missing:
        half = [pair for pair in missing if expected[pair] == 2]
        hint = (" One pair is a half turn (180 degrees) apart, not a quarter turn." if half else
                " Look for shapes that become each other after a quarter turn.")
        return verdict(False, "", f"you found {len(given)} of the {len(expected)} pairs.{hint}")
    found = ", ".join(f"{_pair_text(pair)} ({turns_text[turns]})" for pair, turns in expected.items())
    return verdict(True, f"these pairs differ only by a turn: {found}.", "")


def _classification_params(profile_name: str) -> int:
    from .. import flops, models, profiles

    profile = profiles.get_profile(profile_name)
    model = models.resnet18("base", len(_class_names()), **profile.model_kwargs("classification"))
    return flops.cost(model, (1, 3, 64, 64)).params


def check_2(ratio) -> bool:
    """Exercise 2: parameters of the full profile's classification network / the quick one's (within 3%)."""
    from .. import profiles

    if not is_number(ratio):
        return verdict(False, "", f"{ratio!r} is not a number; give the ratio as one number, e.g. 3.5")
    full, quick = _classification_params(FULL), _classification_params(QUICK)
    expected = full / quick
    widths = profiles.get_profile(FULL).classification.width / profiles.get_profile(QUICK).classification.width
    if close(ratio, expected, rel=0.03):
        return verdict(True, f"{full:,} / {quick:,} parameters = {expected:.2f}, about {widths:g}^2 = "
                             f"{widths ** 2:g}: a convolution's weights grow with input x output channels, and both "
                             f"grow {widths:g} times.", "")
    if close(ratio, widths, rel=0.05):
        why = (f"{number(ratio)} is the ratio of the widths; a 3x3 convolution has in x out x 9 weights, and both "
               "in and out grow with the width")
    elif close(ratio, 1 / expected, rel=0.05):
        why = f"{number(ratio)} is quick / full; give full / quick, the larger number"
    elif close(ratio, widths ** 4, rel=0.05):
        why = f"{number(ratio)} squares the ratio once too often: in x out channels grow {widths:g} x {widths:g} times"
    else:
        why = (f"{number(ratio)} is off; build both networks (models.resnet18 with each profile's "
               "model_kwargs('classification')) and divide their flops.cost(...).params, full by quick")
    return verdict(False, "", why)


def adiac_baselines() -> dict[str, float]:
    """On Adiac's standard test split: the commonest training class's share, the test split's own
    commonest class's share, and uniform guessing."""
    from ..data import load_ucr

    adiac = load_ucr("Adiac")
    train_counts = np.bincount(adiac.y_train, minlength=len(adiac.classes))
    test_counts = np.bincount(adiac.y_test, minlength=len(adiac.classes))
    commonest = int(train_counts.argmax())
    return {"commonest training class": test_counts[commonest] / len(adiac.y_test),
            "commonest test class": test_counts.max() / len(adiac.y_test),
            "uniform guess": 1 / len(adiac.classes), "class": commonest,
            "train count": int(train_counts.max()), "test count": int(test_counts[commonest])}


def check_3(accuracy) -> bool:
    """Exercise 3: test accuracy of always answering Adiac's commonest training class (a fraction, within 0.001)."""
    if not is_number(accuracy):
        return verdict(False, "", f"{accuracy!r} is not a number; give the accuracy as a fraction, e.g. 0.05")
    b = adiac_baselines()
    expected = b["commonest training class"]
    as_fraction = float(accuracy) / 100 if 1 < float(accuracy) <= 100 else accuracy  # percent accepted
    if close(as_fraction, expected, rel=0, abs_tol=0.001):
        return verdict(True, f"class {b['class']} is the commonest in training ({b['train count']} series) but only "
                             f"{b['test count']} test series are of it: {expected:.4f}, below uniform guessing's "
                             f"{b['uniform guess']:.4f}.", "")
    if close(as_fraction, b["commonest test class"], rel=0, abs_tol=0.001):
        why = ("that is the test split's own commonest class, chosen by looking at the test labels; a baseline "
               "may only use the training labels: take the commonest class of y_train, then score it on y_test")
    elif close(as_fraction, b["uniform guess"], rel=0, abs_tol=0.001):
        why = "1/37 is guessing uniformly at random; the exercise always answers the commonest training class"
    else:
        why = (f"{number(accuracy)} is off; find the commonest class of adiac.y_train (np.bincount(...).argmax()), "
               "then the share of adiac.y_test that is that class")
    return verdict(False, "", why)
