"""Where the repository's committed results are: ``results/`` of a checkout.

Looked for in ``$DYNLAB_RESULTS``, next to the ``dynlab`` package (a clone installed in place), and in
the working folder and its parent (a notebook in ``notebooks/``). A pip install from the repository
carries the package only, so outside a checkout there is none.
"""
from __future__ import annotations

import os
from pathlib import Path


def results_folder(marker: str) -> Path | None:
    """The first candidate ``results/`` folder that holds the file ``marker`` (a relative path), or None."""
    here = Path(__file__).resolve().parents[2]
    candidates = [Path(os.environ["DYNLAB_RESULTS"])] if os.environ.get("DYNLAB_RESULTS") else []
    candidates += [here / "results", Path.cwd() / "results", Path.cwd().parent / "results"]
    return next((c for c in candidates if (c / marker).is_file()), None)
