"""Write the standard first two cells of every course notebook from ``dynlab.about``.

Cell 1 (markdown): title line kept from the notebook, then the Colab and Binder badges, then the notebook's
run time and peak memory on one CPU core, and its run time with ``RETRAIN = True``, as ``results/notebooks.csv``
has them (``tools/measure_notebooks.py``).
Cell 2 (code): installs dynlab only when running on Colab, leaving Colab's PyTorch, numpy and
ipywidgets alone, and says to restart the session if pip changed one of them anyway.

    python tools/notebook_header.py          # rewrite the headers in place
    python tools/notebook_header.py --check  # exit 1 if any notebook's header is out of date
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import nbformat

from dynlab import about

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MEASURED = ROOT / "results" / "notebooks.csv"
BADGE_MARK = "<!-- dynlab-badges -->"
COST_MARK = "<!-- dynlab-cost -->"
INSTALL_MARK = "# dynlab: set-up cell"


def badges(name: str) -> str:
    return (f"{BADGE_MARK}\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({about.colab_url(name)}) [![Launch Binder](https://mybinder.org/badge_logo.svg)]({about.binder_url(name)})")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(10, round(seconds, -1)):.0f} s"
    return f"{round(seconds / 60):.0f} min"


def measured(name: str) -> dict[str, dict]:
    """The rows of ``results/notebooks.csv`` for notebook ``name``, by mode (``load``, ``retrain``)."""
    if not MEASURED.is_file():
        return {}
    with open(MEASURED, newline="") as handle:
        return {row.get("mode") or "load": row for row in csv.DictReader(handle) if row["notebook"] == name}


def cost(name: str) -> str:
    """The sentence on the notebook's one-core time and memory, and its time when retraining, from
    ``results/notebooks.csv`` ('' if not measured)."""
    rows = measured(name)
    load, retrain = rows.get("load"), rows.get("retrain")
    if load is None:
        return ""
    text = (f"{COST_MARK}\n*On one CPU core (Binder gives about one), this notebook runs top to bottom in about "
            f"{duration(float(load['seconds']))} (loading the course models), with a peak memory of "
            f"{int(load['peak_rss_mib']) / 1024:.1f} GiB")
    if retrain is not None:
        text += (f"; with `RETRAIN = True` (training its models here) in about {duration(float(retrain['seconds']))} "
                 f"on {retrain['cores']} cores")
    how = " and ".join(f"`{row['command']}` on {row['date']}" for row in (load, retrain) if row)
    return text + f": `results/notebooks.csv`, measured by {how}.*"


#: what Colab has installed and imported already; pip must keep them, or the session must restart
KEPT = ("torch", "numpy", "ipywidgets")


def install_cell() -> str:
    return (f"{INSTALL_MARK} (installs dynlab on Colab only; elsewhere `make lab` has done it)\n"
            "import sys\n"
            "if 'google.colab' in sys.modules:\n"
            "    from importlib.metadata import version\n"
            f"    before = {{name: version(name) for name in {KEPT!r}}}\n"
            f"    !{about.pip_install_line().replace('pip install', 'pip install --quiet')}\n"
            "    changed = [f'{name} {v} -> {version(name)}' for name, v in before.items() if version(name) != v]\n"
            "    print('pip changed ' + ', '.join(changed) + ': restart the session (Runtime > Restart session) '\n"
            "          'and run the notebook again' if changed else\n"
            "          'dynlab installed; Colab\\'s torch, numpy and ipywidgets are kept')\n")


def expected_header(name: str, nb) -> tuple[str, str]:
    first = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    lines = first.splitlines()
    dropped = {i + 1 for i, line in enumerate(lines) if line == COST_MARK}  # the sentence after the mark
    kept = [line for i, line in enumerate(lines)
            if i not in dropped and not line.startswith((BADGE_MARK, COST_MARK, "[![Open In Colab]"))]
    markdown = "\n".join(kept).rstrip() + "\n\n" + badges(name)
    if cost(name):
        markdown += "\n\n" + cost(name)
    return markdown, install_cell()


def apply(path: Path) -> bool:
    """Rewrite the header of one notebook; returns whether it changed."""
    nb = nbformat.read(path, as_version=4)
    markdown, code = expected_header(path.name, nb)
    changed = False
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(markdown))
        changed = True
    elif nb.cells[0].source != markdown:
        nb.cells[0].source = markdown
        changed = True
    if len(nb.cells) > 1 and nb.cells[1].cell_type == "code" and nb.cells[1].source.startswith(INSTALL_MARK):
        if nb.cells[1].source != code:
            nb.cells[1].source = code
            changed = True
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(code))
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def is_current(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    markdown, code = expected_header(path.name, nb)
    return (len(nb.cells) > 1 and nb.cells[0].source == markdown and nb.cells[1].source == code)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.check:
        stale = [p.name for p in paths if not is_current(p)]
        for name in stale:
            print(f"out of date: {name} (run python tools/notebook_header.py)")
        return 1 if stale else 0
    for path in paths:
        if apply(path):
            print(f"updated {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
