"""Notebook 09's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""
import math

import pytest

from dynlab import metrics
from dynlab.experiments import COLUMNS, study, write_csv
from dynlab.exercises import ex09
from exercise_output import says as _says


def _row(task, variant, seed, metric, macs=1_000_000, seconds=10.0):
    row = dict.fromkeys(COLUMNS, "")
    row.update(task=task, model="tsresnet" if task == "timeseries" else "resnet18", variant=variant, data="synthetic",
               profile="quick", seed=seed, metric_name="accuracy", metric=metric, params=1000, macs=macs,
               train_seconds=seconds, epochs=1, device="cpu")
    return row


@pytest.fixture
def grid(tmp_path):
    """A study folder: dyconv clearly above base on the time series, orient level with it on classification."""
    rows = []
    for seed, (base, dyconv, orient) in enumerate(((0.70, 0.80, 0.71), (0.72, 0.81, 0.70), (0.71, 0.805, 0.72))):
        rows += [_row("timeseries", "base", seed, base), _row("timeseries", "dyconv", seed, dyconv),
                 _row("classification", "base", seed, base), _row("classification", "orient", seed, orient)]
    write_csv(rows, tmp_path / "results.csv")
    return tmp_path


def test_check_1(capsys, grid):
    assert ex09.check_1([("dyconv", "timeseries")], grid)
    assert _says(capsys, "Right:", "dyconv on timeseries")
    assert not ex09.check_1([], grid)
    assert _says(capsys, "Not yet:", "missing: dyconv on timeseries")
    assert not ex09.check_1([("dyconv", "timeseries"), ("orient", "classification")], grid)
    assert _says(capsys, "Not yet:", "not significant: orient on classification")
    assert not ex09.check_1([("hard", "segmentation"), ("dyconv", "timeseries")], grid)
    assert _says(capsys, "Not yet:", "not in this study")
    for odd in ("dyconv", 3, [("dyconv",)]):
        assert not ex09.check_1(odd, grid)
        assert _says(capsys, "Not yet:", "not a list of (variant, task) pairs")


def test_check_1_filters_and_refuses_what_it_cannot_judge(capsys, grid, tmp_path_factory):
    assert ex09.check_1([], grid, variants=["base", "orient"])
    assert _says(capsys, "Right:", "none")
    assert not ex09.check_1([], tmp_path_factory.mktemp("empty"))
    assert _says(capsys, "Not yet:", "no results.csv")
    one_seed = tmp_path_factory.mktemp("one-seed")
    write_csv([_row("timeseries", "base", 0, 0.7), _row("timeseries", "dyconv", 0, 0.8)], one_seed / "results.csv")
    assert not ex09.check_1([], one_seed)
    assert _says(capsys, "Not yet:", "fewer than 2 seeds")


@pytest.fixture(scope="module")
def committed():
    folder = study.committed_results()
    if folder is None:
        pytest.skip("no committed study (results/study-quick)")
    return study.read_results(folder)


def test_check_2(capsys, committed):
    scores = ex09.efficiency(committed)
    winners = [max(scores, key=lambda v, i=i: scores[v][i]) for i in range(3)]
    assert ex09.check_2(*winners)
    assert _says(capsys, "Right:", winners[0])
    others = [v for v in scores if v not in winners]
    assert not ex09.check_2(others[0], winners[1], winners[2])
    assert _says(capsys, "Not yet:", "best accuracy", "another variant scores higher")
    assert not ex09.check_2(winners[0], winners[1], ["base"])
    assert _says(capsys, "Not yet:", "is not a variant here")


def test_efficiency_divides_the_mean_metric_by_the_mean_cost(grid):
    rows = study.read_results(grid)
    accuracy, per_mac, per_second = ex09.efficiency(rows)["dyconv"]
    assert math.isclose(accuracy, (0.80 + 0.81 + 0.805) / 3)
    assert math.isclose(per_mac, accuracy / 1.0) and math.isclose(per_second, accuracy / 10.0)


def test_check_3(capsys):
    gains = {task: ex09.seed_gains(task) for task in ("classification", "segmentation")}
    largest = {task: max(g.values()) for task, g in gains.items()}
    smallest = {task: min(g.values()) for task, g in gains.items()}
    assert all(g > 0 for task_gains in gains.values() for g in task_gains.values())  # the seed's claim
    assert ex09.check_3(largest["classification"], largest["segmentation"])
    assert _says(capsys, "Right:", f"{largest['classification']:.1f}")
    assert not ex09.check_3(smallest["classification"], largest["segmentation"])
    assert _says(capsys, "Not yet:", "smallest gain on classification")
    assert not ex09.check_3(largest["classification"], largest["segmentation"] / 100)
    assert _says(capsys, "Not yet:", "fraction")
    assert not ex09.check_3(largest["classification"] + 1, largest["segmentation"])
    assert _says(capsys, "Not yet:", "is off for classification")
    assert not ex09.check_3("eight", 5)
    assert _says(capsys, "Not yet:", "two numbers")


def test_check_4(capsys, committed):
    n, difference = ex09.seeds_needed(committed)
    half = lambda m: metrics.student_t_quantile(0.975, m - 1) * difference.std / math.sqrt(m)  # noqa: E731
    assert half(n) < abs(difference.mean) <= half(n - 1)
    assert ex09.check_4(n)
    assert _says(capsys, "Right:", f"{n} seeds")
    assert not ex09.check_4(n - 1)
    assert _says(capsys, "Not yet:", "still at least")
    assert not ex09.check_4(n + 5)
    assert _says(capsys, "Not yet:", "fewer are too")
    assert not ex09.check_4("many")
    assert _says(capsys, "Not yet:", "not a number")


def test_check_4_names_the_normal_approximation(capsys, committed):
    n, difference = ex09.seeds_needed(committed)
    normal = math.ceil((1.96 * difference.std / abs(difference.mean)) ** 2)
    if normal >= n:
        pytest.skip("the normal approximation happens to give enough seeds here")
    assert not ex09.check_4(normal)
    assert _says(capsys, "Not yet:", "1.96")
