"""Golden values recorded on main before the redesign of issue 17 (commit 'tests: golden values').

The redesign moved code between modules and must not change what it computes. Deliberate changes
since, each said in its commit: a study row's ``device`` names the threads, as Adiac rows always did;
the Adiac report writes an empty last table cell as ``|  |`` like every other cell; the profile of
the paper's own settings is called ``paper`` (``seed`` before), and its network class ``PaperCNN``; a cell's
recorded recipe names its attention temperature schedule (``temperature``, 30 -> 1 for these cells), rows
record each class's test result (``per_class``), the course recipe builds segmentation's ``odconv`` and
(later) ``odconv4x`` without their attention BatchNorm, ``hard`` gates after its own BatchNorm, the course
recipe trains Adiac for 45 epochs, not 30 (the recorded recipe of the time-series row), and the segmentation
scenes have a subject (new data for the segmentation fits; a row records its data's revision, and the
recipe some variants train with on their own), and the course recipe builds segmentation's ``dyconv``
with a BatchNorm in its attention and ``global``'s SE at reduction 4, and the cost model of the per-sample
paths prices ``grouped`` lower where backward keeps its kernels (other paths for some units of the short
fits: they and the rows' training fields were recorded again, on an Intel Xeon). These values were
recorded with the code as it stood then and are checked against the code as it stands now:

- the losses and metrics of a short seeded ``fit`` of every variant on every task (quick-profile
  models, a few samples, two epochs of two steps), compared only on the kind of CPU that recorded
  them (``cpu_signature``);
- the rows an experiment writes for a study cell and for Adiac cells (standard, and the seed's
  Net1 started from its trained static twin); on another kind of CPU, without the numbers their
  training computed (``TRAINED``);
- every model's state-dict keys and shapes, and its checkpoint fingerprint;
- the Adiac report rendered from the committed cells, and the task tables of the committed quick
  study's report;
- a finished training run and a study folder's finished cell written by that code
  (``tests/golden/saved/``): they must keep loading, resuming and being reused.

``python tests/test_golden.py --record`` writes ``tests/golden/values.json`` again: do that only on
purpose, when a change of behaviour is intended, and say so in the commit.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
VALUES = GOLDEN / "values.json"
TASKS = ("classification", "segmentation", "timeseries")
#: float32 on 2 threads; the same code gives the same bits, a reordered sum a few ulps
RTOL = 1e-4


#: the variants registered when the values were recorded (a variant added since is not golden)
VARIANTS = ("base", "global", "local", "hard", "dyconv", "odconv", "odconv4x", "orient")


def _variants() -> list[str]:
    return list(VARIANTS)


def short_fit(variant: str, task: str) -> dict:
    """A seeded two-epoch ``fit`` of the quick-profile model on 16 samples: per-epoch numbers."""
    from dynlab.engine import fit
    from dynlab.experiments import build_model, load_data

    data = load_data(task, "synthetic", "quick", seed=0, limit=16)
    torch.manual_seed(0)
    model = build_model(variant, task, data, "quick")
    extra = {"ignore_index": data.ignore_index} if data.ignore_index is not None else {}
    history = fit(model, data.train, data.val, data.test, task=task, epochs=2, batch_size=8, lr=1e-3, seed=0,
                  device="cpu", quiet=True, **extra)
    keys = ("train_loss", "train_aux_loss", "val_loss", "val_metric", "temperature")
    return {"records": [{k: r[k] for k in keys} for r in history.records], "test": history.test,
            "best_epoch": history.best_epoch}


def model_shapes() -> dict:
    """State-dict keys and shapes, and the checkpoint fingerprint, of every model the kit builds."""
    from dynlab.engine import model_fingerprint
    from dynlab.experiments import build_model, load_data
    from dynlab.models import net1_dcnn, net2_dcnn

    out = {}
    for task in TASKS:
        data = load_data(task, "synthetic", "quick", seed=0, limit=1)
        for variant in _variants():
            model = build_model(variant, task, data, "quick")
            out[f"{task}/{variant}"] = _shapes(model, model_fingerprint(model))
    for build in (net1_dcnn, net2_dcnn):
        for variant in ("base", "dyconv"):
            model = build(variant, 37, length=176)
            out[f"{build.__name__}/{variant}"] = _shapes(model, model_fingerprint(model))
    return out


def _shapes(model, fingerprint) -> dict:
    """``state``: one "name shape" line per state-dict entry; ``fingerprint``: the class and variant it names,
    and a sha256 of the whole fingerprint (its parameter list repeats the state's parameters). A class
    renamed since (``RENAMED_MODELS``) is hashed under its old name, as the checkpoints it wrote name it."""
    import hashlib

    from dynlab.engine.checkpoint import RENAMED_MODELS

    old_names = {new: old for old, new in RENAMED_MODELS.items()}
    fingerprint = {**fingerprint, "model": old_names.get(fingerprint["model"], fingerprint["model"])}
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    return {"state": [f"{k} {'x'.join(map(str, v.shape))}" for k, v in model.state_dict().items()],
            "fingerprint": {"model": fingerprint["model"], "variant": fingerprint["variant"], "sha256": digest}}


def experiment_rows(tmp: Path) -> dict:
    """Rows of a study cell and of Adiac cells, as the experiments write them (timing fields dropped)."""
    from dynlab.experiments import Cell, adiac, runner, train_cell

    rows = {}
    run = train_cell(Cell("timeseries", "dyconv", profile="quick"), epochs=1, limit=24, quiet=True, device="cpu")
    rows["study/timeseries/dyconv"] = run.row()
    for cell in (adiac.tsresnet_cell("standard", "odconv", 0), adiac.paper_cell("net1", "base", 1),
                 adiac.paper_cell("net1-from-static", "dyconv", 1)):
        rows[f"adiac/{cell.name}"] = runner.train_and_save(cell, str(tmp / "adiac"), "cpu", 1, 24, True)
    for row in rows.values():
        for key in ("train_seconds", "device"):
            row.pop(key, None)
    return rows


def save_runs(where: Path) -> None:
    """A finished training run (``run/``) and a one-cell study folder (``study/``) written by the code."""
    from dynlab.engine import fit
    from dynlab.engine.smoke import TinyNet, smoke_datasets
    from dynlab.experiments import study

    train, val, test = smoke_datasets(samples=64, seed=0)
    torch.manual_seed(0)
    fit(TinyNet("dyconv"), train, val, test, epochs=2, batch_size=16, lr=1e-2, out_dir=where / "run", quiet=True)
    study.run_study(["base"], ["timeseries"], profile="quick", epochs=1, limit=16, out=where / "study", quiet=True,
                    device="cpu")
    # what decides reuse: the finished cell's record (its checkpoints are large; run/ covers checkpoints)
    for name in ("report.md", "metric_per_variant.png", "metric_vs_macs.png", "curves.png"):
        (where / "study" / name).unlink()
    shutil.rmtree(where / "study" / "runs")


def adiac_report(tmp: Path) -> str:
    """The Adiac report as the report code renders it from the committed cells and meta.json."""
    from dynlab.experiments import adiac

    folder = tmp / "committed-adiac"
    shutil.copytree(ROOT / "results" / "adiac_cells", folder / "cells")
    shutil.copyfile(ROOT / "results" / "adiac_meta.json", folder / "meta.json")
    return adiac.report_markdown(folder)


def study_tables() -> str:
    """The task sections (tables) of the committed quick study's report, rendered from its results.csv."""
    from dynlab.experiments import study

    text = study.report_markdown(study.read_results(ROOT / "results" / "study-quick"))
    return text[text.index("## "):]


def compute(tmp: Path) -> dict:
    return {
        "fits": {f"{task}/{variant}": short_fit(variant, task) for task in TASKS for variant in _variants()},
        "fits_machine": cpu_signature(),
        "models": model_shapes(),
        "rows": experiment_rows(tmp),
    }


@pytest.fixture(scope="module")
def golden():
    return json.loads(VALUES.read_text())


def _close(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            _close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=RTOL, abs=1e-7), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def cpu_signature() -> str:
    """The CPU, the instruction set torch's kernels use on it, and torch: what computed the short fits.
    Float32 kernels differ between CPUs in their last bits, and a two-step fit on 16 samples turns those
    into other predictions (an AMD EPYC and an Intel Xeon gave accuracies of 0.25 and 0.5 for the same
    seeded fit), so the fits, and the numbers of the experiment rows, are compared only on the kind of
    machine that recorded them. The CPU's name alone is not enough: two machines both named "AMD EPYC",
    with the same torch, gave different losses, one of them with AVX-512 kernels. Virtual machines often
    give Intel CPUs of several generations one name ("Intel(R) Xeon(R) Processor"), so the CPU family
    and model numbers are part of it too."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's fields are enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"


@pytest.mark.parametrize("task", TASKS)
def test_short_fits_give_the_recorded_losses(golden, task):
    if golden["fits_machine"] != cpu_signature():
        pytest.skip(f"the short fits were recorded on {golden['fits_machine']}; this is {cpu_signature()}, whose "
                    "float32 kernels round differently (see cpu_signature)")
    for variant in _variants():
        key = f"{task}/{variant}"
        _close(json.loads(json.dumps(short_fit(variant, task))), golden["fits"][key], key)


def test_models_keep_their_state_dict_and_fingerprint(golden):
    _close(json.loads(json.dumps(model_shapes())), golden["models"], "models")


#: a row's fields that its (short) training computed: compared only on the recording kind of machine
TRAINED = ("attention", "best_epoch", "curve", "metric", "per_class", "val_metric")


def test_experiments_write_the_recorded_rows(golden, tmp_path):
    """Rows may have gained fields since (every row now names its protocol and keeps its curve)."""
    from dynlab.profiles import RENAMED

    got = json.loads(json.dumps(experiment_rows(tmp_path)))
    assert got.keys() == golden["rows"].keys()
    same_machine = golden["fits_machine"] == cpu_signature()  # else what training computed differs in its bits
    for key, want in golden["rows"].items():
        want = {**want, "profile": RENAMED.get(want["profile"], want["profile"])}
        if not same_machine:  # the recipe, sizes and names still must match; the trained fields must be there
            for k in TRAINED:
                assert type(got[key][k]) is type(want[k]), f"rows.{key}.{k}: {got[key][k]!r} against {want[k]!r}"
                if isinstance(want[k], dict):
                    assert got[key][k].keys() == want[k].keys(), f"rows.{key}.{k}: keys {sorted(got[key][k])}"
            want = {k: v for k, v in want.items() if k not in TRAINED}
        _close({k: got[key][k] for k in want}, want, f"rows.{key}")


def test_reports_render_the_committed_results_as_before(tmp_path, monkeypatch):
    from dynlab import layers

    monkeypatch.setattr(layers, "names", _variants)  # the report lists the variants not refit yet
    assert adiac_report(tmp_path) == (GOLDEN / "adiac_report.md").read_text()
    assert study_tables() == (GOLDEN / "study_tables.md").read_text()


def test_a_run_saved_before_keeps_loading_and_resuming(tmp_path):
    from dynlab.engine import History, fit, load_checkpoint
    from dynlab.engine.smoke import TinyNet, smoke_datasets

    saved = GOLDEN / "saved" / "run"
    model = TinyNet("dyconv")
    with pytest.warns(UserWarning, match="before checkpoints carried a checksum"):
        checkpoint = load_checkpoint(saved / "best.pt", model)
    assert checkpoint["epoch"] >= 1 and model.unit.temperature == checkpoint["temperature"]
    run = shutil.copytree(saved, tmp_path / "run")
    train, val, test = smoke_datasets(samples=64, seed=0)
    with pytest.warns(UserWarning, match="before checkpoints carried a checksum"):
        reloaded = fit(TinyNet("dyconv"), train, val, test, epochs=2, batch_size=16, lr=1e-2, out_dir=run,
                       resume=True, quiet=True)
    before = History.read_json(saved / "history.json")
    assert reloaded.records == before.records and reloaded.test == before.test  # finished: reloaded, not trained


def test_a_study_folder_saved_before_is_reused(tmp_path, monkeypatch):
    from dynlab.experiments import runner, study

    folder = shutil.copytree(GOLDEN / "saved" / "study", tmp_path / "study")

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell of an old study folder was trained again")

    monkeypatch.setattr(runner, "train_and_save", refuse)
    study.run_study(["base"], ["timeseries"], profile="quick", epochs=1, limit=16, out=folder, quiet=True)
    rows = study.read_results(folder)
    assert [(r["task"], r["variant"], r["seed"]) for r in rows] == [("timeseries", "base", 0)]
    assert (folder / "report.md").exists()
    assert [p.name for p in (folder / "cells").iterdir()] == ["standard__tsresnet__base__seed0.json"]  # renamed


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python tests/test_golden.py --record   (writes tests/golden/; see the module doc)")
    import os
    import tempfile

    os.environ["DYNLAB_CPU_BF16"] = "0"
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        values = compute(Path(tmp))
        VALUES.write_text(json.dumps(values, sort_keys=True) + "\n")
        (GOLDEN / "adiac_report.md").write_text(adiac_report(Path(tmp)))
    (GOLDEN / "study_tables.md").write_text(study_tables())
    shutil.rmtree(GOLDEN / "saved", ignore_errors=True)
    save_runs(GOLDEN / "saved")
    print(f"wrote {VALUES} and the two reports")
