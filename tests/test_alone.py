"""Notebooks run as outside the checkout (the Colab situation): the built wheel, each notebook alone.

``tools/run_alone.py`` installs this checkout's wheel (not editable) into a fresh folder, copies each
notebook into an empty folder and runs it there; the kernel first checks that ``dynlab`` comes from the
wheel. The course models wait in the cache an installed dynlab fetches into, so nothing is fetched.
00, 06, 08 and 09 run here (08 and 09 show the committed results the wheel carries: run_alone fails a
notebook that says it found none); the others are the same course_runs path as 06.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALONE = ("00_start_here.ipynb", "06_odconv.ipynb", "08_time_series_adiac.ipynb", "09_comparison_study.ipynb")


def test_notebooks_run_alone_from_the_wheel():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "run_alone.py"), *ALONE, "--timeout", "900"],
                          capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ALONE:
        assert f"{name}: ran alone in" in done.stdout, done.stdout
