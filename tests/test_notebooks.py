"""Static checks of the course notebooks (fast: nothing is executed; `make test` runs them with nbval).

For every ``notebooks/NN_*.ipynb``: valid nbformat; committed stripped of outputs and execution
counts; the first two cells are the current header of ``tools/notebook_header.py``, whose first states the
measured run time (``results/notebooks.csv``), and no other cell states one by hand; it states its learning
objectives and its class time; and it does not paste library code (training loops, data loaders,
widgets) that belongs in ``dynlab``.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.name for p in PATHS]

#: the course as README.md lists it
EXPECTED = (
    "00_start_here.ipynb",
    "01_resnet18.ipynb",
    "02_global_soft_attention.ipynb",
    "03_local_soft_attention.ipynb",
    "04_hard_attention.ipynb",
    "05_dynamic_convolution.ipynb",
    "06_odconv.ipynb",
    "07_orientation_pooling.ipynb",
    "08_time_series_adiac.ipynb",
    "09_comparison_study.ipynb",
)

#: definitions that live in dynlab, never in a notebook (the from-scratch units are named otherwise)
PASTED_LIBRARY = re.compile(
    r"^\s*(?:def\s+(?:fit|_fit|evaluate|train_variant|course_runs|load_task|load_ucr|load_timeseries_fold|"
    r"plot_history|plot_gradcam|plot_segmentation|plot_attention|gradcam|profile|collect_attention|"
    r"mean_std|paired_difference)\s*\(|"
    r"class\s+(?:Explorer|History|ConfusionMatrix|SyntheticShapes|SyntheticScenes|UCRDataset|TaskData)\b)",
    re.MULTILINE,
)
#: a run time written by hand: a number a later measurement would contradict (the header states it instead)
RUN_TIME = re.compile(
    r"run time in the quick profile[:*\s]*(?:about\s+|~\s*)?\d+(?:\.\d+)?(?:\s*[-\u2013]\s*\d+(?:\.\d+)?)?\s*"
    r"(?:min|minutes|s|seconds)\b",
    re.IGNORECASE,
)


def _header_module():
    spec = importlib.util.spec_from_file_location("notebook_header", ROOT / "tools" / "notebook_header.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def header():
    return _header_module()


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _markdown(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def test_notebooks_exist():
    assert PATHS, f"no course notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_valid_nbformat(path):
    nbformat.validate(_read(path))


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_committed_stripped(path):
    nb = _read(path)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or execution counts; commit notebooks "
                       "stripped (e.g. `jupyter nbconvert --clear-output --inplace`)")
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the metadata; commit it stripped"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_header_current(path, header):
    assert header.is_current(path), f"{path.name}: cells 1-2 are out of date; run python tools/notebook_header.py"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_title_first(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: cell 1 must open with '# title'"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_states_objectives_class_time_and_run_time(path, header):
    nb = _read(path)
    text = _markdown(nb)
    assert re.search(r"learning objectives|what you will learn", text, re.IGNORECASE), \
        f"{path.name}: no learning objectives ('What you will learn')"
    assert re.search(r"class time", text, re.IGNORECASE), f"{path.name}: no class time"
    assert header.COST_MARK in nb.cells[0].source, (f"{path.name}: no measured run time in cell 1; run "
                                                   "tools/measure_notebooks.py, then tools/notebook_header.py")
    assert not RUN_TIME.search(text), (f"{path.name}: a run time written by hand; cell 1 states the measured one "
                                       "(results/notebooks.csv)")


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_no_pasted_library_code(path):
    nb = _read(path)
    found = [(i, m.group(0).strip()) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for m in PASTED_LIBRARY.finditer(cell.source)]
    assert not found, f"{path.name}: library code pasted into the notebook (use dynlab instead): {found}"


def test_pasted_library_check_catches_definitions():
    assert PASTED_LIBRARY.search("x = 1\ndef fit(model, data):\n    pass")
    assert PASTED_LIBRARY.search("class Explorer:\n    pass")
    assert not PASTED_LIBRARY.search("history = fit(model, train, val)\nclass BasicBlock(nn.Module): pass")


def test_run_time_pattern():
    assert RUN_TIME.search("**Run time in the quick profile:** 2.5 min on a 2-core CPU (measured, load 3).")
    assert RUN_TIME.search("Run time in the quick profile: about 40 s on a 2-core CPU")
    assert not RUN_TIME.search("**Run time:** the first cell states it, measured.")


def test_all_ten_notebooks_present():
    present = {p.name for p in PATHS}
    missing = [name for name in EXPECTED if name not in present]
    extra = sorted(present - set(EXPECTED))
    assert not missing, f"missing course notebooks: {missing}"
    assert not extra, f"notebooks not in the course list (README.md, this test's EXPECTED): {extra}"


#: a path into the repository as a notebook names it (not part of a URL)
REPOSITORY_PATH = re.compile(r"(?<![\w/.-])(?:results|tools|benchmarks|checkpoints|dynlab|notebooks)/[\w./-]*\w")


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_the_files_a_notebook_names_exist(path):
    text = "\n".join(cell.source for cell in _read(path).cells)
    missing = sorted({p for p in REPOSITORY_PATH.findall(text) if not (ROOT / p).exists()})
    assert not missing, f"{path.name} names files the repository does not have: {missing}"


def test_repository_path_pattern():
    assert REPOSITORY_PATH.findall("see `results/adiac.md` and dynlab/layers/se.py.") == ["results/adiac.md",
                                                                                         "dynlab/layers/se.py"]
    assert not REPOSITORY_PATH.findall("https://github.com/dynlab-course/dynlab/blob/main/notebooks/x.ipynb")
