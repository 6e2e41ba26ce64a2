"""The tables a variant notebook shows under its training cells (dynlab.course)."""
from types import SimpleNamespace

from dynlab import course


def fake_run(metric: float, baseline: dict) -> SimpleNamespace:
    return SimpleNamespace(metric=metric, metric_name="accuracy", baseline=baseline,
                           data=SimpleNamespace(name="synthetic"), history=SimpleNamespace(records=[{}] * 3),
                           train_seconds=12.4, params=123_400, macs=5_670_000)


def test_the_run_table_puts_the_trivial_answer_beside_each_run_and_flags_runs_near_it():
    chance = {"name": "commonest class", "value": 0.1}
    table = course.run_table({"classification": fake_run(0.93, chance), "timeseries": fake_run(0.12, chance)})
    lines = table.splitlines()
    assert "trivial answer" in lines[0] and len(lines) == 4
    learned, near = lines[2], lines[3]
    assert "| 0.930 |" in learned and "0.100 (commonest class)" in learned and "near trivial" not in learned
    assert "0.120 (near trivial)" in near
    assert "| 3 | 12 | 123.4 k | 5.67 M |" in learned


def test_a_run_without_a_recorded_trivial_answer_says_so():
    assert "| n/a |" in course.run_table({"classification": fake_run(0.5, {})})


def test_the_seed_claims_name_base_and_the_variant_and_only_where_the_seed_reports_them():
    claims = course.seed_claims("hard")
    assert "base 65.2, hard 68.7" in claims and "base 67.5, hard 70.69" in claims
    assert "Adiac" not in claims  # the seed reports no hard attention on Adiac
    assert course.seed_claims("dyconv") == "The seed reports no numbers for `dyconv`."
    assert course.seed_claims("base").count(": base ") == 2  # Tables 3 and 4; Adiac names its CNN otherwise
