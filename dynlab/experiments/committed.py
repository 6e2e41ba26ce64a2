"""Where the repository's committed files are: ``results/`` and ``checkpoints/`` of a checkout.

Looked for next to the ``dynlab`` package (a clone installed in place), and in the working folder
and its parent (a notebook in ``notebooks/``); results also in ``$DYNLAB_RESULTS``. A pip install
from the repository carries the package only, so outside a checkout there is none.
"""
from __future__ import annotations

import os
from pathlib import Path


def package_parent() -> Path:
    """The folder above the package: the repository's root when dynlab is a checkout installed in place."""
    return Path(__file__).resolve().parents[2]


def in_checkout() -> bool:
    """Whether this dynlab is a checkout's (installed in place) rather than an installed wheel."""
    return (package_parent() / "pyproject.toml").is_file()


def checkout_folder(relative: str, marker: str) -> Path | None:
    """The first candidate folder ``relative`` (a path in the repository) that holds the file ``marker``, or None."""
    candidates = [package_parent() / relative, Path.cwd() / relative, Path.cwd().parent / relative]
    return next((c for c in candidates if (c / marker).is_file()), None)


def results_folder(marker: str) -> Path | None:
    """The first candidate ``results/`` folder that holds the file ``marker`` (a relative path), or None."""
    if os.environ.get("DYNLAB_RESULTS") and (Path(os.environ["DYNLAB_RESULTS"]) / marker).is_file():
        return Path(os.environ["DYNLAB_RESULTS"])
    return checkout_folder("results", marker)
