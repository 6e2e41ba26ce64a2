"""A smoke study (one variant per task, tiny) so that `make study` cannot rot unseen; the CLI."""
import csv
import json
import subprocess
import sys

import pytest

from dynlab import cli
from dynlab.experiments import COLUMNS, runner, study

GRID = dict(data="synthetic", profile="quick", epochs=1, limit=24, quiet=True)


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    for task, variant in (("classification", "base"), ("segmentation", "hard"), ("timeseries", "dyconv")):
        study.run_study([variant], [task], out=out, **GRID)
    study.run_study(["base"], ["timeseries"], seeds=[0, 1], out=out, **GRID)
    study.run_study(["dyconv"], ["timeseries"], seeds=[1], out=out, **GRID)
    return out


def test_results_csv_has_every_cell_and_the_columns(smoke_study):
    with open(smoke_study / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    cells = {(r["task"], r["variant"], r["seed"]) for r in rows}
    assert cells == {("classification", "base", "0"), ("segmentation", "hard", "0"), ("timeseries", "dyconv", "0"),
                     ("timeseries", "base", "0"), ("timeseries", "base", "1"), ("timeseries", "dyconv", "1")}
    for row in rows:
        assert 0.0 <= float(row["metric"]) <= 1.0
        assert int(row["params"]) > 0 and int(row["macs"]) > 0 and float(row["train_seconds"]) > 0
        assert row["metric_name"] == ("miou" if row["task"] == "segmentation" else "accuracy")
        assert row["epochs"] == "1" and row["device"].startswith("cpu (") and row["profile"] == "quick"


def test_report_tables_plots_and_seed_claims(smoke_study):
    report = (smoke_study / "report.md").read_text()
    assert "## classification" in report and "## segmentation" in report and "## timeseries" in report
    assert "seed Table 3" in report and "| base" in report and "65.2" in report
    assert "not measured here" in report
    # every task's table holds its trivial answer, and a smoke run's models are flagged as near it
    assert report.count("| trivial baseline (commonest class) |") == 2
    assert "| trivial baseline (background everywhere) |" in report
    assert "**Near the trivial answer**" in report and "(near trivial)" in report
    # the attention figures, for the variants that have them
    assert "the attention on the test split" in report and "| dyconv | " in report
    # two matched seeds for dyconv and base on time series: a confidence interval is reported
    dyconv_line = next(line for line in report.splitlines() if line.startswith("| dyconv") and "[" in line)
    assert "[" in dyconv_line and "]" in dyconv_line
    for name in ("metric_per_variant.png", "metric_vs_macs.png", "curves.png"):
        assert (smoke_study / name).stat().st_size > 1000


def test_rerun_skips_finished_cells(smoke_study, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(runner, "train_and_save", refuse)
    study.run_study(["base"], ["timeseries"], seeds=[0, 1], out=smoke_study, **GRID)


def test_an_interrupted_cell_is_run_again_and_nothing_else(smoke_study, monkeypatch):
    lost = smoke_study / "cells" / "standard__tsresnet__base__seed1.json"
    kept = json.loads(lost.read_text())
    lost.unlink()
    trained = []
    real = runner.train_and_save

    def spy(cell, *args):
        trained.append((cell.variant, cell.task, cell.seed))
        return real(cell, *args)

    monkeypatch.setattr(runner, "train_and_save", spy)
    study.run_study(["base"], ["timeseries"], seeds=[0, 1], out=smoke_study, **GRID)
    assert trained == [("base", "timeseries", 1)]
    again = json.loads(lost.read_text())
    assert again["metric"] == kept["metric"]  # the finished checkpoint was reloaded, not retrained


def test_bad_names_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="valid tasks"):
        study.run_study(["base"], ["detection"], out=tmp_path / "x")
    with pytest.raises(ValueError, match="valid variants"):
        study.run_study(["resnet"], ["timeseries"], out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_refuses_bad_values_with_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.main(["study", "--tasks", "detection"])
    assert "invalid choice: 'detection'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--variant", "base", "--task", "timeseries", "--epochs", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --epochs: must be a positive number, got 0" in err and len(err.strip().splitlines()) == 1


def test_cli_train_then_evaluate_and_resume_protection(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--variant", "orient", "--task", "timeseries", "--epochs", "1", "--limit", "20", "--quiet"]
    assert cli.main(["train", *args, "--out", str(out)]) == 0
    trained = capsys.readouterr().out
    assert "test accuracy" in trained and (out / "best.pt").exists()
    assert cli.main(["train", *args, "--out", str(out)]) == 2  # an existing run is never overwritten silently
    assert "resume" in capsys.readouterr().err
    assert cli.main(["evaluate", "--variant", "orient", "--task", "timeseries", "--limit", "20", "--out", str(out)]) == 0
    assert "accuracy=" in capsys.readouterr().out
    assert cli.main(["evaluate", "--variant", "base", "--task", "timeseries", "--limit", "20", "--out", str(out)]) == 2


def test_console_help_shows_examples():
    out = subprocess.run([sys.executable, "-m", "dynlab.cli", "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in out.stdout and "dynlab study" in out.stdout


def test_results_read_back_and_models_reload(smoke_study):
    rows = study.read_results(smoke_study)
    assert {r["variant"] for r in rows} == {"base", "hard", "dyconv"} and isinstance(rows[0]["metric"], float)
    model = study.load_model(smoke_study, "timeseries", "dyconv", seed=1)
    assert not model.training and sum(p.numel() for p in model.parameters()) == next(
        r["params"] for r in rows if r["variant"] == "dyconv" and r["seed"] == 1)
