"""Notebooks run as outside the checkout (the Colab situation): the built wheel, each notebook alone.

``tools/run_alone.py`` installs this checkout's wheel (not editable) into a fresh folder, copies each
notebook into an empty folder and runs it there; the kernel first checks that ``dynlab`` comes from the
wheel. The course models wait in the cache an installed dynlab fetches into, so nothing is fetched.
Every notebook runs here (08 and 09 show the committed results the wheel carries: run_alone fails a
notebook that says it found none), loading the course models as it does by default. The run is the
``alone_run`` fixture of ``tests/conftest.py``, which ``tests/test_book.py`` renders the book from.
"""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.slow
@pytest.mark.timeout(3000)  # ten notebooks one after another: minutes, more on a busy machine
def test_every_notebook_runs_alone_from_the_wheel(alone_run):
    done = alone_run.done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in NOTEBOOKS:
        assert f"{name}: ran alone in" in done.stdout, done.stdout
