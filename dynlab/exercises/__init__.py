"""Self-checks for the course's exercises: ``from dynlab.exercises import ex02`` then ``ex02.check_1(answer)``.

One module per notebook (``ex00`` ... ``ex09``), one ``check_N`` per exercise whose answer is a number,
a shape or a property that can be checked. A check computes the right answer with the library (never a
stored number that a change to the code would leave stale), prints one line that says right or not yet,
and why, and returns True or False, so a solution can ``assert`` it. Exercises whose answer is an
argument have worked answers only, in ``notebooks/solutions/``, apart from the student notebooks;
``tests/exercises/`` runs every check against right and wrong answers, and ``make test`` runs
every solution notebook.
"""
from __future__ import annotations

import math
from typing import Any


def verdict(ok: bool, right: str, wrong: str) -> bool:
    """Print ``Right: <right>`` or ``Not yet: <wrong>`` and return ``ok``."""
    print(f"Right: {right}" if ok else f"Not yet: {wrong}")
    return bool(ok)


def close(answer: Any, expected: float, rel: float = 0.05, abs_tol: float = 0.0) -> bool:
    """Whether ``answer`` is a number within ``rel`` (relative) or ``abs_tol`` of ``expected``."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False
    return math.isclose(value, expected, rel_tol=rel, abs_tol=abs_tol)


def number(answer: Any) -> str:
    """``answer`` as the checks print it: a number with thousands separated, or its repr."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return repr(answer)
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1000 else f"{value:g}"


#: the profile the exercises' checks build their models and data in: the course's
PROFILE = "quick"


def is_number(answer: Any) -> bool:
    """Whether ``answer`` reads as one number (a check says "not a number" instead of raising)."""
    try:
        float(answer)
    except (TypeError, ValueError):
        return False
    return True


def course_data(data=None, task: str = "classification"):
    """``data`` if given (a notebook's ``run.data``), else ``task``'s data in the course profile."""
    if data is not None:
        return data
    from ..experiments import load_data

    return load_data(task, "synthetic", PROFILE)
