"""Nothing lost, nothing silent: atomic writes that clean up, one process per folder, cells that remember
their settings, checksummed checkpoints, and one-line errors from the command line."""
import errno
import json
import os

import pytest
import torch

from dynlab import cli, files
from dynlab.engine import fit, load_checkpoint
from dynlab.engine.smoke import TinyNet, smoke_datasets
from dynlab.errors import CheckpointError, DiskFullError, FolderBusyError, SettingsMismatchError
from dynlab.experiments import study

ONE_THREAD = True
TINY = dict(data="synthetic", profile="quick", limit=8, quiet=True)


@pytest.fixture(scope="module")
def data():
    return smoke_datasets(samples=32, seed=0)


def tiny_fit(out, data, **kwargs):
    torch.manual_seed(0)
    train, val, test = data
    return fit(TinyNet("base"), train, val, test, epochs=2, batch_size=16, out_dir=out, quiet=True, **kwargs)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- atomic writes ----------------------------------------------------------------------------------
class FullDisk:
    """``open`` for files.py: a write to a temporary file fails as a full disk makes it fail."""

    def __init__(self, after_bytes=0):
        self.after = after_bytes

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        after = self.after

        class Handle:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, data):
                handle.write(data[:after])
                raise OSError(errno.ENOSPC, "No space left on device")

        return Handle()


def test_a_full_disk_names_the_file_leaves_nothing_and_resume_carries_on(tmp_path, data, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(files, "open", FullDisk(after_bytes=100), raising=False)
    with pytest.raises(DiskFullError, match=r"^could not write .*run/best\.pt: no space left on device; free space "
                                            r"and re-run with --resume$"):
        tiny_fit(out, data)
    assert leftovers(out) == []
    monkeypatch.undo()
    history = tiny_fit(out, data, resume=True)  # nothing was written: the run starts over cleanly
    assert len(history) == 2 and leftovers(out) == []


def test_temporary_files_of_dead_processes_are_removed_when_a_run_starts(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    dead = out / ".last.pt.4194301.tmp"  # a pid above Linux's default pid_max: no such process
    alive = out / f".best.pt.{os.getppid()}.tmp"
    dead.write_bytes(b"half a checkpoint")
    alive.write_bytes(b"another process's write in progress")
    tiny_fit(out, data)
    assert not dead.exists() and alive.exists()


def test_the_csv_of_a_grid_is_written_under_a_name_of_its_own(tmp_path):
    files.atomic_write_csv(tmp_path / "results.csv", [{"a": 1}], ["a", "b"])
    assert (tmp_path / "results.csv").read_text().splitlines() == ["a,b", "1,"]
    assert files.temporary_path(tmp_path / "results.csv").name == f".results.csv.{os.getpid()}.tmp"


# -- one process per folder ---------------------------------------------------------------------------
def test_a_second_process_on_a_folder_is_refused(tmp_path, data):
    out = tmp_path / "run"
    with files.folder_lock(out, "dynlab train"):
        with pytest.raises(FolderBusyError, match=rf"{out} is in use by dynlab train \(pid {os.getpid()}"):
            tiny_fit(out, data)
        with pytest.raises(FolderBusyError, match="in use"):
            study.run_study(["base"], ["timeseries"], epochs=1, out=out, **TINY)
    assert not (out / "last.pt").exists()
    tiny_fit(out, data)  # released


# -- cells remember their settings ----------------------------------------------------------------------
def test_a_finished_cell_is_reused_only_with_the_same_settings(tmp_path, capsys):
    out = tmp_path / "study"
    study.run_study(["base"], ["timeseries"], epochs=1, out=out, **TINY)
    row = json.loads(next((out / "cells").glob("*.json")).read_text())
    assert row["settings"]["epochs"] == 1 and row["settings"]["limit"] == 8 and row["settings"]["recipe_version"] >= 1
    study.run_study(["base"], ["timeseries"], epochs=1, out=out, **TINY)  # the same: reused
    with pytest.raises(SettingsMismatchError, match=r"standard__tsresnet__base__seed0: epochs 1 -> 2.*--retrain-mismatched"):
        study.run_study(["base"], ["timeseries"], epochs=2, out=out, **TINY)
    study.run_study(["base"], ["timeseries"], epochs=2, out=out, retrain_mismatched=True, **TINY)
    assert "set aside" in capsys.readouterr().err
    assert json.loads((out / "cells" / "standard__tsresnet__base__seed0.json").read_text())["epochs"] == 2
    kept = [p.name for p in (out / "cells").iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1 and [p.name for p in (out / "runs").iterdir() if ".replaced-" in p.name]


def test_a_recipe_field_added_later_had_its_default_in_older_rows():
    from dynlab.experiments.cell import Cell
    from dynlab.experiments.pipeline import cell_settings
    from dynlab.experiments.runner import settings_difference

    wanted = cell_settings(Cell("timeseries", "base", profile="full"))
    older = json.loads(json.dumps(wanted))
    del older["recipe"]["temperature"]  # written before the recipe had a temperature: it was the default
    assert settings_difference({"settings": older}, wanted) == {}
    changed = json.loads(json.dumps(wanted))
    changed["recipe"]["temperature"] = [30.0, 5.0]
    assert settings_difference({"settings": older}, changed) == {"recipe": (older["recipe"] | {"temperature": [30.0, 1.0]},
                                                                          changed["recipe"])}


def test_another_variants_unit_options_do_not_change_a_cell():
    from dynlab.experiments.cell import Cell
    from dynlab.experiments.pipeline import cell_settings
    from dynlab.experiments.runner import settings_difference

    wanted = cell_settings(Cell("segmentation", "base", profile="quick"))
    assert wanted["recipe"]["unit_options"] == {}  # the quick recipe sets options for hard and odconv only
    older = json.loads(json.dumps(wanted))
    older["recipe"]["unit_options"] = {"hard": {"budget_weight": 0.1}, "odconv": {"attention_norm": "none"}}
    assert settings_difference({"settings": older, "variant": "base"}, wanted) == {}
    hard = cell_settings(Cell("segmentation", "hard", profile="quick"))
    assert list(hard["recipe"]["unit_options"]) == ["hard"]
    assert settings_difference({"settings": older, "variant": "hard"}, hard) != {}


def test_another_variants_own_recipe_does_not_change_a_cell():
    from dynlab.experiments.cell import Cell
    from dynlab.experiments.pipeline import cell_settings
    from dynlab.experiments.runner import settings_difference

    base = cell_settings(Cell("classification", "base", profile="quick"))
    orient = cell_settings(Cell("classification", "orient", profile="quick"))
    assert "variant_recipe" not in base["recipe"] and base["recipe"]["clip_grad_norm"] == 1.0
    assert orient["recipe"]["clip_grad_norm"] == 5.0  # orient's own setting, in its cell's recipe
    older = json.loads(json.dumps(base))  # written before recipes had fields of their own per variant
    assert settings_difference({"settings": older, "variant": "base"}, base) == {}
    assert settings_difference({"settings": older, "variant": "orient"}, orient) != {}


def test_a_cell_trained_on_an_older_data_generator_is_not_reused():
    from dynlab.experiments.cell import Cell
    from dynlab.experiments.pipeline import cell_settings
    from dynlab.experiments.runner import settings_difference

    for task, revised in (("segmentation", True), ("classification", False)):
        wanted = cell_settings(Cell(task, "base", profile="quick"))
        older = {k: v for k, v in json.loads(json.dumps(wanted)).items() if k != "data_version"}
        difference = settings_difference({"settings": older, "variant": "base"}, wanted)
        assert (difference == {"data_version": (1, 2)}) if revised else (difference == {})


def test_a_damaged_cell_record_is_named(tmp_path):
    out = tmp_path / "study"
    study.run_study(["base"], ["timeseries"], epochs=1, out=out, **TINY)
    cell = next((out / "cells").glob("*.json"))
    cell.write_text(cell.read_text()[:20])
    with pytest.raises(ValueError, match=rf"{cell} is damaged .*delete it and run the same command again"):
        study.run_study(["base"], ["timeseries"], epochs=1, out=out, **TINY)


# -- checkpoints ----------------------------------------------------------------------------------------
def test_a_bit_flip_in_a_checkpoints_tensors_is_caught(tmp_path, data):
    tiny_fit(tmp_path, data)
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    checkpoint["model"]["fc.bias"][0] += 1e-3  # a changed value, the old checksum
    torch.save(checkpoint, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="best.pt is damaged: its tensors do not match the checksum"):
        load_checkpoint(tmp_path / "best.pt", TinyNet("base"))


@pytest.mark.parametrize("damage, what", [(lambda p: p.write_bytes(b""), "empty"),
                                          (lambda p: p.write_bytes(p.read_bytes()[:500]), "cut short"),
                                          (lambda p: torch.save({"weights": torch.ones(2)}, p), "not a checkpoint")])
def test_an_unusable_checkpoint_is_named_with_what_to_do(tmp_path, data, damage, what):
    tiny_fit(tmp_path, data)
    damage(tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match=rf"best\.pt.*{what}.*delete it and train again"):
        load_checkpoint(tmp_path / "best.pt", TinyNet("base"))


def test_resuming_on_another_thread_count_says_it_will_not_be_bit_identical(tmp_path, data):
    train, val, test = data

    def crash_after_1(context):
        if context.epoch == 1:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyNet("base"), train, val, test, epochs=3, batch_size=16, out_dir=tmp_path, quiet=True,
            callbacks=[crash_after_1])
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match="will not end exactly where an uninterrupted run would"):
            fit(TinyNet("base"), train, val, test, epochs=3, batch_size=16, out_dir=tmp_path, quiet=True, resume=True)
    finally:
        torch.set_num_threads(threads)


# -- the command line -----------------------------------------------------------------------------------
def one_line_error(capsys, code, expected_code=2):
    """The error is one line; before it, a download may have said in one line each which mirror failed."""
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if "; trying the next mirror" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


TRAIN = ["train", "--variant", "base", "--task", "timeseries", "--epochs", "1", "--limit", "8", "--quiet"]


def test_cli_user_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    if not torch.cuda.is_available():
        err = one_line_error(capsys, cli.main([*TRAIN, "--device", "cuda", "--out", str(tmp_path / "gpu")]))
        assert "CUDA is not available" in err and not (tmp_path / "gpu").exists()
        err = one_line_error(capsys, cli.main(["study", "--tasks", "timeseries", "--variants", "base", "--device",
                                               "cuda", "--out", str(tmp_path / "gpu-study")]))
        assert "CUDA" in err and not (tmp_path / "gpu-study").exists()
    (tmp_path / "a-file").write_text("")
    err = one_line_error(capsys, cli.main([*TRAIN, "--out", str(tmp_path / "a-file" / "run")]))
    assert "a file is in the way" in err
    err = one_line_error(capsys, cli.main([*TRAIN, "--out", str(tmp_path / ("x" * 300))]))
    assert "too long" in err
    err = one_line_error(capsys, cli.main([*TRAIN, "--resume"]))
    assert "--resume needs --out" in err
    err = one_line_error(capsys, cli.main(["study", "--tasks", "classification", "--folds", "0", "--out",
                                           str(tmp_path / "s")]))
    assert "--folds" in err and "timeseries" in err
    for bad in (["--seed", "-1"], ["--seed", str(2 ** 70)], ["--out", ""]):
        with pytest.raises(SystemExit) as exit_:
            cli.main([*TRAIN, *bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"argument {bad[0]}" in err
    for bad in (["--batch", "0"], ["--size", "-1"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            cli.main(["bench", *bad])
        assert f"argument {bad[0]}" in capsys.readouterr().err


def test_cli_existing_run_names_the_flags_and_damaged_checkpoints_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TRAIN, "--out", str(out)]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, cli.main([*TRAIN, "--out", str(out)]))
    assert "--resume" in err and "--overwrite" in err
    assert cli.main([*TRAIN, "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    (out / "best.pt").write_bytes(b"")
    err = one_line_error(capsys, cli.main(["evaluate", "--variant", "base", "--task", "timeseries", "--limit", "8",
                                           "--out", str(out)]))
    assert "best.pt (empty" in err


def test_cli_ctrl_c_and_offline_downloads(tmp_path, capsys, monkeypatch):
    from dynlab.data import download, voc
    from dynlab.experiments import study as study_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "train_variant", interrupted)
    err = one_line_error(capsys, cli.main([*TRAIN, "--out", str(tmp_path / "r")]), expected_code=130)
    assert "interrupted; the same command with --resume carries on" in err

    def offline(url, *args, **kwargs):
        raise download.URLError("no network")

    monkeypatch.setattr(download, "urlopen", offline)
    monkeypatch.setenv("DYNLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(voc, "_complete", lambda path: False)
    err = one_line_error(capsys, cli.main(["data", "download", "voc2012"]))
    assert "Could not download" in err and "by hand" in err


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="--resume needs --out"):
        cli.main(["--debug", *TRAIN, "--resume"])


def test_a_malicious_pickle_in_a_checkpoint_runs_nothing(tmp_path, data):
    import pickle

    tiny_fit(tmp_path, data)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "last.pt", "wb") as handle:
        pickle.dump({"fingerprint": Evil(), "model": {}}, handle)
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(tmp_path / "last.pt")
    assert not marker.exists()


KILLED_RUN = """
import os, signal, sys, torch
from dynlab.engine import fit
from dynlab.engine.smoke import TinyNet, smoke_datasets
torch.set_num_threads(1)
train, val, test = smoke_datasets(samples=64, seed=0)
def kill_after_2(context):
    if context.epoch == 2:
        os.kill(os.getpid(), signal.SIGKILL)
torch.manual_seed(0)
fit(TinyNet("dyconv"), train, val, test, epochs=4, batch_size=16, lr=1e-2, seed=3, out_dir=sys.argv[1], quiet=True,
    callbacks=[kill_after_2])
"""


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_end(tmp_path, data):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "cut")], capture_output=True)
    assert result.returncode == -9 and (tmp_path / "cut" / "last.pt").exists()
    train, val, test = smoke_datasets(samples=64, seed=0)
    settings = dict(epochs=4, batch_size=16, lr=1e-2, seed=3, quiet=True)
    torch.manual_seed(0)
    whole = fit(TinyNet("dyconv"), train, val, test, out_dir=tmp_path / "whole", **settings)
    resumed = fit(TinyNet("dyconv"), train, val, test, out_dir=tmp_path / "cut", resume=True, **settings)
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(resumed.records) == strip(whole.records) and resumed.test == whole.test
