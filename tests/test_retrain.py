"""A variant notebook's retrain path: ``RETRAIN = True`` trains every task live instead of loading the course
models (nbval runs the notebooks with the default, loading). Notebook 02 (global soft attention) is the one
run here, in a fresh run folder so that nothing is reloaded; the test checks that each task's run was
trained and saved there and that the notebook's result table reports it.
"""
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_global_soft_attention.ipynb"
TASKS = ("classification", "segmentation", "timeseries")


def with_retrain(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with its set-up cell's ``RETRAIN = False`` switched to True (exactly one such line)."""
    switched = 0
    for cell in notebook.cells:
        if cell.cell_type == "code" and "RETRAIN = False" in cell.source:
            cell.source = cell.source.replace("RETRAIN = False", "RETRAIN = True")
            switched += 1
    assert switched == 1, f"expected one 'RETRAIN = False' line in {NOTEBOOK.name}, found {switched}"
    return notebook


@pytest.mark.slow
@pytest.mark.timeout(1800)  # it trains three course cells: minutes, more on a busy machine
def test_notebook_02_retrains_every_task_live(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("DYNLAB_RUNS", str(runs))
    monkeypatch.setenv("DYNLAB_QUICK", "1")
    monkeypatch.setenv("DYNLAB_CPU_BF16", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = with_retrain(nbformat.read(NOTEBOOK, as_version=4))
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3").execute(cwd=str(NOTEBOOK.parent))
    print(f"{NOTEBOOK.name} with RETRAIN = True: {time.perf_counter() - started:.0f} s")  # shown with -s / --durations
    for task in TASKS:
        folder = runs / "course" / f"quick-synthetic-global-{task}-seed0"
        assert (folder / "best.pt").is_file(), f"{task} was not trained into {folder}: {sorted(runs.rglob('*'))[:20]}"
    printed = "".join(output.get("text", "") + output.get("data", {}).get("text/markdown", "")
                      for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert "no course model" not in printed  # retraining is asked for: nothing to report missing
    for task, data in (("classification", "synthetic-shapes"), ("segmentation", "synthetic-scenes"),
                       ("timeseries", "adiac")):
        assert f"| {task} | {data} |" in printed, printed[-2000:]  # course.run_table's row of the live run


def test_the_retrain_switch_is_found():
    notebook = with_retrain(nbformat.read(NOTEBOOK, as_version=4))
    assert sum("RETRAIN = True" in cell.source for cell in notebook.cells if cell.cell_type == "code") == 1
