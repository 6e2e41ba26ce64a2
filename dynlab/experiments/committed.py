"""Where the repository's committed files are: ``results/`` and ``checkpoints/`` of a checkout, and the
results a built package carries.

Looked for next to the ``dynlab`` package (a clone installed in place), and in the working folder
and its parent (a notebook in ``notebooks/``); results also in ``$DYNLAB_RESULTS``. A wheel (a pip
install from the repository, Colab) has no checkout beside it, so it carries the results the notebooks
read, ``SHIPPED``, as package data: the build copies them from ``results/`` into ``dynlab/results/``
(``setup.py``), where ``results_folder`` finds them last. The course models are fetched instead
(``course_models``): they are larger, and only those a notebook loads are needed.

This module imports nothing from dynlab or torch: ``setup.py`` reads ``SHIPPED`` from it at build time.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the files under ``results/`` that notebooks 08 and 09 read, carried by the built package
SHIPPED = (
    "study-quick/results.csv",
    "study-quick/report.md",
    "adiac_standard.csv",
    "adiac_refit.csv",
    "adiac_10fold.csv",
    "adiac_meta.json",
    "adiac.png",
)
#: where the built package keeps them, relative to the ``dynlab`` package folder
PACKAGED = "results"


def package_parent() -> Path:
    """The folder above the package: the repository's root when dynlab is a checkout installed in place."""
    return Path(__file__).resolve().parents[2]


def packaged_results() -> Path:
    """The ``results/`` folder inside the installed package (only a built package has one)."""
    return Path(__file__).resolve().parents[1] / PACKAGED


def in_checkout() -> bool:
    """Whether this dynlab is a checkout's (installed in place) rather than an installed wheel."""
    return (package_parent() / "pyproject.toml").is_file()


def checkout_folder(relative: str, marker: str) -> Path | None:
    """The first candidate folder ``relative`` (a path in the repository) that holds the file ``marker``, or None."""
    candidates = [package_parent() / relative, Path.cwd() / relative, Path.cwd().parent / relative]
    return next((c for c in candidates if (c / marker).is_file()), None)


def results_folder(marker: str) -> Path | None:
    """The first candidate ``results/`` folder that holds the file ``marker`` (a relative path), or None:
    ``$DYNLAB_RESULTS``, the checkout's, then the one the built package carries."""
    if os.environ.get("DYNLAB_RESULTS") and (Path(os.environ["DYNLAB_RESULTS"]) / marker).is_file():
        return Path(os.environ["DYNLAB_RESULTS"])
    found = checkout_folder("results", marker)
    if found is None and (packaged_results() / marker).is_file():
        found = packaged_results()
    return found
