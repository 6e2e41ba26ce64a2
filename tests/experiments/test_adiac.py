"""The Adiac experiments: their cells, the paper's start-from-static option, resuming, failures, the report, the CLI."""
import csv
import dataclasses
import json
import multiprocessing

import pytest
import torch

from dynlab import cli, layers, profiles
from dynlab.engine import load_checkpoint
from dynlab.experiments import COLUMNS, PAPER_MODELS, adiac, build_cell_model, cell_data, cell_from_row, pipeline, runner

TINY = dict(epochs=1, limit=20, quiet=True)


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("adiac")
    adiac.run_adiac(["standard", "refit", "10fold"], out, variants=["base", "dyconv"], seeds=[0, 1], folds=[0, 1],
                   fold_variants=["base"], command="dynlab adiac (test)", **TINY)
    return out


def test_grid_cells_and_order():
    cells = adiac.grid()
    standard = [c for c in cells if c.protocol == "standard"]
    refits = [c for c in cells if c.protocol == "refit"]
    folds = [c for c in cells if c.protocol == "10fold"]
    assert len(standard) == len(layers.names()) * 5 and {c.model for c in standard} == {"tsresnet"}
    assert [(c.variant, c.seed) for c in refits] == [(c.variant, c.seed) for c in standard]
    assert len(folds) == 10 * (2 * len(PAPER_MODELS) + len(adiac.FOLD_VARIANTS))
    assert len({c.name for c in cells}) == len(cells)
    position = {c: i for i, c in enumerate(cells)}
    for cell in cells:  # a cell that starts from a trained static twin comes after it
        if cell.static_twin is not None:
            assert position[cell.static_twin] < position[cell]
    assert adiac.paper_cell("net2-from-static", "dyconv", 3).static_twin == adiac.paper_cell("net2", "base", 3)
    with pytest.raises(ValueError, match="valid protocols: standard, refit, 10fold"):
        adiac.grid(["loo"])
    with pytest.raises(ValueError, match="folds are 0..9"):
        adiac.grid(["10fold"], folds=[10])
    with pytest.raises(ValueError, match="valid variants"):
        adiac.grid(variants=["attention"])


def test_recipes_the_full_profile_and_the_seed_networks_recipe():
    assert profiles.get_profile("full").timeseries == profiles.TIMESERIES_RECIPES[profiles.DEFAULT_RECIPE]
    assert profiles.recipe_profile().name == "full" and profiles.recipe_profile("plateau").name == "full+plateau"
    assert profiles.get_profile("full+plateau") == profiles.recipe_profile("plateau")
    seed = profiles.get_profile("paper").timeseries  # the paper's Table 1
    assert (seed.epochs, seed.batch_size, seed.lr, seed.optimizer, seed.dropout) == (30, 32, 1e-3, "adam", 0.2)
    assert adiac.tsresnet_cell("standard", "base", 0).profile == "full"
    assert adiac.paper_cell("net1", "base", 0).profile == "paper"
    with pytest.warns(FutureWarning, match="now called 'paper'"):
        assert profiles.get_profile("seed") is profiles.get_profile("paper")
    with pytest.raises(ValueError, match="valid recipes"):
        profiles.recipe_profile("longer")


def test_csvs_have_the_study_columns_and_every_cell(grid_dir):
    for protocol, filename in adiac.RESULT_FILES.items():
        with open(grid_dir / filename) as handle:
            rows = list(csv.DictReader(handle))
        assert tuple(rows[0]) == COLUMNS
        for row in rows:
            assert 0.0 <= float(row["metric"]) <= 1.0 and row["epochs"] == "1" and int(row["macs"]) > 0
    standard = adiac.read_results("standard", grid_dir)
    assert {(r["variant"], r["seed"]) for r in standard} == {("base", 0), ("base", 1), ("dyconv", 0), ("dyconv", 1)}
    refits = adiac.read_results("refit", grid_dir)
    assert {(r["variant"], r["seed"]) for r in refits} == {(r["variant"], r["seed"]) for r in standard}
    folds = adiac.read_results("10fold", grid_dir)
    models = {(r["model"], r["variant"]) for r in folds}
    assert models == {(m, v) for m in PAPER_MODELS for v in ("base", "dyconv")} | {("tsresnet", "base")}
    assert {r["profile"] for r in folds if r["model"] != "tsresnet"} == {"paper"}
    for row in standard + refits + folds:
        assert cell_from_row(row).name in {c.name for c in adiac.grid(folds=[0, 1], seeds=[0, 1])}


def test_report_plot_and_provenance(grid_dir):
    report = (grid_dir / "adiac.md").read_text()
    assert "dynlab adiac (test)" in report and "torch " in report and "epochs overridden to 1" in report
    assert "Standard split (390 train / 391 test), 2 seeds" in report and "2 of the 10 stratified folds" in report
    assert "0.571 (0.059)" in report and "0.653 (0.062)" in report and "not measured here" in report
    assert "vs tsresnet base" in report and "vs Net1 CNN+; " in report and "vs Net1 CNN |" in report
    assert (grid_dir / "adiac.png").stat().st_size > 5000
    assert "refit on all 390 training series, 2 seeds" in report and "Refit minus the standard split's" in report
    assert "Not refit yet: global, local, hard, odconv, odconv4x, orient" in report
    meta = json.loads((grid_dir / "meta.json").read_text())
    assert meta["invocations"][-1]["cells_trained"] == 4 + 4 + 2 * 9 and "tsresnet" in next(iter(meta["recipes"]))
    published = adiac.publish(grid_dir, grid_dir / "published")
    assert sorted(p.name for p in published) == sorted(["adiac_standard.csv", "adiac_refit.csv", "adiac_10fold.csv",
                                                        "adiac.md", "adiac.png", "adiac_meta.json", "adiac_cells"])
    assert len(list((grid_dir / "published" / "adiac_cells").glob("*.json"))) == 26
    with pytest.raises(FileNotFoundError, match="no Adiac results"):
        adiac.publish(grid_dir / "nothing", grid_dir / "elsewhere")


def test_a_rerun_trains_nothing_and_another_recipe_is_refused(grid_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(pipeline, "fit", refuse)
    adiac.run_adiac(["standard"], grid_dir, variants=["base"], seeds=[0, 1], **TINY)
    with pytest.raises(ValueError, match="use another --out"):
        adiac.run_adiac(["standard"], grid_dir, variants=["base"], seeds=[0], recipe="plateau", **TINY)


def test_a_fresh_folder_carries_the_published_grid_on(grid_dir, tmp_path, monkeypatch):
    adiac.publish(grid_dir, tmp_path / "results")

    def refuse(*args, **kwargs):
        raise AssertionError("a published cell was trained again")

    monkeypatch.setattr(pipeline, "fit", refuse)
    out = adiac.run_adiac(["standard"], tmp_path / "fresh", variants=["base", "dyconv"], seeds=[0, 1],
                         start_from=tmp_path / "results", **TINY)
    assert (out / "adiac_standard.csv").read_text() == (grid_dir / "adiac_standard.csv").read_text()
    assert len(json.loads((out / "meta.json").read_text())["invocations"]) == 1  # the published one: none here
    with pytest.raises(FileNotFoundError, match="no published Adiac cells"):
        adiac.adopt_published(tmp_path, tmp_path / "other")


def test_paper_start_from_static_freezes_kernels_and_the_control_has_no_attention(grid_dir):
    cell = adiac.paper_cell("net1-from-static", "dyconv", 0)
    data = cell_data(cell, limit=20)
    dynamic = build_cell_model(cell, data, grid_dir)
    static = build_cell_model(adiac.paper_cell("net1", "base", 0), data)
    load_checkpoint(grid_dir / "runs" / cell.static_twin.name / "best.pt", static)
    kernels = dynamic.features[0].weight
    assert not kernels.requires_grad and kernels.shape[0] == 4
    assert torch.allclose(kernels, static.features[0].weight.expand_as(kernels), atol=0.1 * float(kernels.std()))
    control = build_cell_model(adiac.paper_cell("net1-from-static", "base", 0), data, grid_dir)
    assert not control.features[0].weight.requires_grad
    assert torch.equal(control.features[0].weight, static.features[0].weight)
    assert control.fc.weight.requires_grad
    with pytest.raises(FileNotFoundError, match="has not been trained"):
        build_cell_model(adiac.paper_cell("net1-from-static", "dyconv", 7), data, grid_dir)


def test_a_refit_trains_on_the_validation_series_too_and_keeps_its_last_epoch(grid_dir, tmp_path):
    standard = json.loads((grid_dir / "cells" / "standard__tsresnet__base__seed0.json").read_text())
    refit = json.loads((grid_dir / "cells" / "refit__tsresnet__base__seed0.json").read_text())
    data = cell_data(adiac.tsresnet_cell("standard", "base", 0), limit=20)
    assert standard["train_series"] == len(data.train) and refit["train_series"] == len(data.train) + len(data.val)
    assert refit["protocol"] == "refit" and refit["best_epoch"] == refit["epochs"] == 1
    history = json.loads((grid_dir / "runs" / "refit__tsresnet__base__seed0" / "history.json").read_text())
    assert history["config"]["keep"] == "last"
    with pytest.raises(ValueError, match="fixed-length recipe"):  # a plateau recipe stops when validation says so
        runner.train_and_save(adiac.tsresnet_cell("refit", "base", 0, recipe="plateau"), str(tmp_path), "cpu", 1,
                              20, True)
    assert not (tmp_path / "runs").exists()


def test_unit_options_reach_the_tsresnet_units_only(tmp_path):
    cell = adiac.tsresnet_cell("standard", "odconv", 0, options={"attention_norm": "none"})
    data = cell_data(cell, limit=20)
    model = build_cell_model(cell, data)
    units = [m for m in model.modules() if isinstance(m, layers.ODConv)]
    assert units and all(u.attention.bn is None for u in units)
    row = runner.train_and_save(cell, str(tmp_path), "cpu", 1, 20, True)
    assert row["unit_options"] == {"attention_norm": "none"}
    net1 = dataclasses.replace(adiac.paper_cell("net1", "dyconv", 0), options={"kernels": 2})
    with pytest.raises(ValueError, match="unit options apply to the tasks' own networks"):
        build_cell_model(net1, cell_data(net1, limit=20))


def test_a_failed_cell_is_reported_and_the_others_are_kept(tmp_path, monkeypatch):
    real = runner.train_and_save

    def flaky(cell, *args):
        if cell.variant == "global":
            raise RuntimeError("out of memory (simulated)")
        return real(cell, *args)

    monkeypatch.setattr(runner, "train_and_save", flaky)
    with pytest.raises(RuntimeError, match=r"1 of 2 cells failed(.|\n)*global(.|\n)*simulated"):
        adiac.run_adiac(["standard"], tmp_path, variants=["base", "global"], seeds=[0], **TINY)
    assert [r["variant"] for r in runner.read_rows(tmp_path)] == ["base"]
    assert (tmp_path / "adiac_standard.csv").exists()


@pytest.mark.slow
def test_cli_runs_cells_in_parallel_and_publishes(tmp_path, capsys):
    out, results = tmp_path / "grid", tmp_path / "results"
    code = cli.main(["adiac", "--protocols", "10fold", "--folds", "0", "--fold-variants", "--jobs", "2", "--epochs",
                     "1", "--limit", "20", "--quiet", "--out", str(out), "--publish", str(results)])
    assert code == 0
    rows = adiac.read_results("10fold", results)
    assert len(rows) == 2 * len(PAPER_MODELS) and {r["model"] for r in rows} == set(PAPER_MODELS)
    meta = json.loads((results / "adiac_meta.json").read_text())
    assert meta["invocations"][0]["command"].startswith("dynlab adiac --protocols 10fold")
    assert "published:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):
        cli.main(["adiac", "--jobs", "0", "--out", str(out)])


def test_an_interrupted_grid_keeps_its_cells_and_records_itself(tmp_path, monkeypatch, capsys):
    real = runner.train_and_save

    def stopped_at_the_second(cell, *args):
        if cell.variant == "global":
            raise KeyboardInterrupt  # what Ctrl-C, or SIGTERM through the CLI's handler, raises
        return real(cell, *args)

    monkeypatch.setattr(runner, "train_and_save", stopped_at_the_second)
    out, results = tmp_path / "grid", tmp_path / "results"
    code = cli.main(["adiac", "--protocols", "standard", "--variants", "base", "global", "--seeds", "0",
                     "--epochs", "1", "--limit", "20", "--quiet", "--out", str(out), "--publish", str(results)])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert [r["variant"] for r in adiac.read_results("standard", results)] == ["base"]
    (invocation,) = json.loads((results / "adiac_meta.json").read_text())["invocations"]
    assert invocation["cells_trained"] == 1 and invocation["stopped"] == "interrupted after 1 of its 2 cells"
    assert "(interrupted after 1 of its 2 cells)" in (results / "adiac.md").read_text()


@pytest.mark.slow
def test_an_interrupted_parallel_grid_stops_its_workers(tmp_path, monkeypatch):
    real_wait = runner.wait

    def interrupted_wait(futures, **kwargs):
        real_wait(futures, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        adiac.run_adiac(["standard"], tmp_path, variants=["base", "odconv4x", "global"], seeds=[0], jobs=2,
                       epochs=40, limit=20, quiet=True)
    (invocation,) = json.loads((tmp_path / "meta.json").read_text())["invocations"]
    assert invocation["stopped"] == "interrupted after 1 of its 3 cells"  # odconv4x stopped, global never begun
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]  # none left to finish its cell
    assert not (tmp_path / "cells" / "standard__tsresnet__odconv4x__seed0.json").exists()


@pytest.mark.slow
def test_sigterm_stops_the_cli_like_ctrl_c(tmp_path):
    """What `kill` or `timeout` sends: the grid records its finished cells and exits with 130."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "grid"
    command = [sys.executable, "-m", "dynlab.cli", "adiac", "--protocols", "standard", "--variants", "base", "global",
               "--seeds", "0", "--epochs", "15", "--limit", "20", "--quiet", "--out", str(out)]
    first = out / "cells" / "standard__tsresnet__base__seed0.json"  # then `global` trains for seconds
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    (invocation,) = json.loads((out / "meta.json").read_text())["invocations"]
    assert invocation["stopped"] == "interrupted after 1 of its 2 cells"
