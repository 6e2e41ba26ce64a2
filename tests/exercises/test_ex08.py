"""Notebook 08's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import math

from dynlab import metrics, paper
from dynlab.exercises import ex08
from exercise_output import says as _says


def test_check_4(capsys):
    factor, t_3, t_10 = ex08.interval_factor()
    assert math.isclose(t_3, metrics.student_t_quantile(0.975, 2)) and t_3 > t_10 > 1.96
    assert factor > math.sqrt(10 / 3)  # fewer degrees of freedom widen the interval further
    assert ex08.check_4(factor)
    assert _says(capsys, "Right:", f"{factor:.2f}")
    for wrong, reason in ((math.sqrt(10 / 3), "sqrt(10 / 3) alone"), (t_3 / t_10, "t quantiles alone"),
                          (1 / factor, "inverse"), (10 / 3, "is off"), ("narrower", "not a number")):
        assert not ex08.check_4(wrong)
        assert _says(capsys, "Not yet:", reason)


def test_check_5(capsys):
    accuracy = paper.table("4a")["accuracy"]
    won = sum(d > c for d, c in zip(accuracy["D-CNN"], accuracy["CNN"]))
    assert (won, len(accuracy["CNN"])) == ex08.seed_folds_won()
    assert ex08.check_5(won)
    assert _says(capsys, "Right:", f"{won} of 10")
    if won != 5:
        assert not ex08.check_5(10 - won)
        assert _says(capsys, "Not yet:", "where CNN wins")
    assert not ex08.check_5(won - 1 if won > 5 else won + 1)
    assert _says(capsys, "Not yet:", "is off")
    assert not ex08.check_5(None)
    assert _says(capsys, "Not yet:", "not a number")
