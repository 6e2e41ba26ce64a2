"""Run a notebook with one cell appended that reports on the kernel, under extra environment variables.

Shared by ``measure_notebooks.py`` (peak memory on one core) and ``gpu_notebooks.py`` (peak GPU memory):
the probe cell runs in the same kernel after the notebook's last cell, so it sees what the notebook used.
``with_retrain`` switches a notebook from loading the course models to training them.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def run_with_probe(nb, probe: str, folder: Path, env: dict[str, str], timeout: int) -> tuple[float, str]:
    """Execute ``nb`` (a notebook node, changed in place) in ``folder`` with ``probe`` appended and ``env``
    added to the environment the kernel inherits; the seconds it took and what the probe printed."""
    import nbformat
    from nbclient import NotebookClient

    nb.cells.append(nbformat.v4.new_code_cell(probe))
    old = dict(os.environ)
    os.environ.update(env)
    try:
        started = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3").execute(cwd=str(folder))
        seconds = time.perf_counter() - started
    finally:
        os.environ.clear()
        os.environ.update(old)
    return seconds, "".join(out.get("text", "") for out in nb.cells[-1].outputs)


def with_retrain(nb):
    """``nb`` (changed in place) with its set-up cell's ``RETRAIN = False`` switched to ``True``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "RETRAIN = False" in cell.source:
            cell.source = cell.source.replace("RETRAIN = False", "RETRAIN = True")
            return nb
    raise RuntimeError("no 'RETRAIN = False' line in the notebook")
