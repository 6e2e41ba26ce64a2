"""The committed results are found in a checkout, in the copy a built package carries, or where
``$DYNLAB_RESULTS`` says; outside a checkout without either there are none (a notebook copied alone)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dynlab.experiments import adiac, committed, study

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_results_are_found_in_the_checkout():
    assert (study.committed_results() / "results.csv").is_file()
    assert (adiac.committed_results() / adiac.RESULT_FILES["standard"]).is_file()


def test_outside_a_checkout_there_are_none_unless_dynlab_results_names_them(tmp_path, monkeypatch):
    found = study.committed_results().parent
    monkeypatch.setattr(committed, "__file__", str(tmp_path / "site" / "dynlab" / "experiments" / "committed.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DYNLAB_RESULTS", raising=False)
    assert study.committed_results() is None and adiac.committed_results() is None
    monkeypatch.setenv("DYNLAB_RESULTS", str(found))
    assert study.committed_results() == found / "study-quick"


def test_an_installed_package_reads_the_results_it_carries(tmp_path, monkeypatch):
    site = tmp_path / "site" / "dynlab"
    for name in committed.SHIPPED:
        (site / committed.PACKAGED / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "results" / name, site / committed.PACKAGED / name)
    monkeypatch.setattr(committed, "__file__", str(site / "experiments" / "committed.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DYNLAB_RESULTS", raising=False)
    assert study.committed_results() == site / "results" / "study-quick"
    assert adiac.committed_results() == site / "results"
    assert study.read_results(study.committed_results()) == study.read_results(ROOT / "results" / "study-quick")


def test_the_notebooks_read_only_shipped_results():
    """What 08 and 09 open under RESULTS must be in SHIPPED, or a notebook outside a checkout would miss it."""
    import re

    import nbformat

    opened = set()
    for name, prefix in (("08_time_series_adiac.ipynb", ""), ("09_comparison_study.ipynb", "study-quick/")):
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            opened |= {prefix + f for f in re.findall(r'RESULTS / "([^"]+)"', cell.source)}
    opened |= {"study-quick/results.csv"} | {adiac.RESULT_FILES[p] for p in adiac.PROTOCOLS}  # read by the library
    assert opened and opened <= set(committed.SHIPPED), sorted(opened - set(committed.SHIPPED))


@pytest.mark.slow
def test_the_built_wheel_carries_the_shipped_results_and_the_seed_tables(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("dynlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"dynlab/{committed.PACKAGED}/{name}" for name in committed.SHIPPED} <= names
    assert "dynlab/paper_tables.json" in names


def test_an_sdist_would_carry_what_the_build_copies():
    listed = {line.split(None, 1)[1].strip() for line in (ROOT / "MANIFEST.in").read_text().splitlines()
              if line.startswith("include ")}
    assert listed == {f"results/{name}" for name in committed.SHIPPED}
