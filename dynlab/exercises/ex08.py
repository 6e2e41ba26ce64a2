"""Self-checks for notebook 08 (the seed's CNN and D-CNN on UCR Adiac).

- ``check_4(factor)``: how many times narrower a 95% paired interval is over 10 folds than over 3,
  for the same spread of the differences.
- ``check_5(folds)``: on how many of the 10 folds of the seed's Table 4a its D-CNN beats its CNN.

Exercises 1 and 3 are training runs to compare and exercise 2 an argument; their worked answers are in
``notebooks/solutions/08_time_series_adiac.ipynb``.
"""
from __future__ import annotations

import math

from . import close, is_number, number, verdict


def interval_factor(few: int = 3, many: int = 10, confidence: float = 0.95) -> tuple[float, float, float]:
    """(width over ``few`` folds / width over ``many``, the t quantile for ``few``, for ``many``): a paired
    interval's half-width is t_{(1+confidence)/2, n-1} s_d / sqrt(n)."""
    from ..metrics import student_t_quantile

    t_few = student_t_quantile((1 + confidence) / 2, few - 1)
    t_many = student_t_quantile((1 + confidence) / 2, many - 1)
    return (t_few / math.sqrt(few)) / (t_many / math.sqrt(many)), t_few, t_many


def check_4(factor) -> bool:
    """Exercise 4: width of the 95% interval over 3 folds divided by its width over 10, for the same s_d (within 1%)."""
    if not is_number(factor):
        return verdict(False, "", f"{factor!r} is not a number; give width over 3 folds / width over 10, e.g. 2")
    expected, t_3, t_10 = interval_factor()
    root = math.sqrt(10 / 3)
    if close(factor, expected, rel=0.01):
        return verdict(True, f"({t_3:.2f} / sqrt 3) / ({t_10:.2f} / sqrt 10) = {expected:.2f}. The standard "
                             "deviation of the folds does not shrink with more folds at all; the interval shrinks "
                             "with 1 / sqrt(n) and, on top, the t quantile falls as the degrees of freedom grow.", "")
    if close(factor, root, rel=0.01):
        why = f"{number(factor)} is sqrt(10 / 3) alone; the t quantile changes too (2 against 9 degrees of freedom)"
    elif close(factor, t_3 / t_10, rel=0.01):
        why = f"{number(factor)} is the ratio of the t quantiles alone; the interval also divides by sqrt(n)"
    elif close(factor, 1 / expected, rel=0.01):
        why = f"{number(factor)} is the inverse: divide the width over 3 folds by the width over 10"
    else:
        why = (f"{number(factor)} is off; the half-width is t(0.975, n - 1) * s_d / sqrt(n) "
               "(metrics.student_t_quantile gives t)")
    return verdict(False, "", why)


def seed_folds_won() -> tuple[int, int]:
    """(folds of the seed's Table 4a where its D-CNN's accuracy beats its CNN's, folds in the table)."""
    from .. import paper

    accuracy = paper.table("4a")["accuracy"]
    return sum(d > c for d, c in zip(accuracy["D-CNN"], accuracy["CNN"])), len(accuracy["CNN"])


def check_5(folds) -> bool:
    """Exercise 5: the number of folds in the seed's Table 4a where D-CNN's test accuracy is above CNN's (exact)."""
    if not is_number(folds):
        return verdict(False, "", f"{folds!r} is not a number; give a count of folds, e.g. 7")
    won, total = seed_folds_won()
    if close(folds, won, rel=0):
        return verdict(True, f"{won} of {total}. Winning on every fold says the gain is not one lucky fold; it does "
                             "not say where the gain comes from (the D-CNN also trained twice as long), and the folds "
                             "share most of their training series, so they are not independent trials.", "")
    if close(folds, total - won, rel=0):
        why = f"{number(folds)} counts the folds where CNN wins; count those where D-CNN's accuracy is higher"
    else:
        why = (f"{number(folds)} is off; compare paper.table('4a')['accuracy']['D-CNN'] with ['CNN'] fold by fold "
               f"({total} folds)")
    return verdict(False, "", why)
