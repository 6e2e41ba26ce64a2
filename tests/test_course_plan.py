"""Every course notebook follows the course's plan (fast: nothing is executed; ``make test`` runs the
notebooks and their solutions with nbval).

- The lesson ends with a ``## What to remember`` summary, then ``## Exercises``, an optional
  ``## Going further`` appendix, and ``## References`` last.
- The exercises are one numbered list; each says where and how long it is done: *(in class, N min)*
  or *(homework, N min)*, which the teacher's guide (``notebooks/TEACHING.md``) plans with.
- Every exercise has a worked answer in ``notebooks/solutions/<same name>.ipynb`` (``### Exercise K``).
- Self-checks: every ``exNN.check_K`` an exercise names exists in ``dynlab.exercises.exNN`` and belongs to
  exercise K; every check of that module is named by its exercise and asserted by its solution.
- Each variant notebook draws its unit with ``dynlab.diagrams.unit_diagram``.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
SOLUTIONS = ROOT / "notebooks" / "solutions"
#: notebooks whose lesson is one unit of dynlab.layers, and the variants whose diagram may stand for it
VARIANT_NOTEBOOKS = {"01": ("base",), "02": ("global",), "03": ("local",), "04": ("hard",), "05": ("dyconv",),
                     "06": ("odconv", "odconv4x"), "07": ("orient",)}
TAG = re.compile(r"\*\((?:in class|homework), \d+(?:-\d+)? min\)\*")
ITEM = re.compile(r"^(\d+)\. ", re.MULTILINE)
CHECK = re.compile(r"\bex(\d\d)\.(check_\d+)\b")


def _cells(path: Path):
    return nbformat.read(path, as_version=4).cells


def _markdown(path: Path) -> str:
    return "\n\n".join(cell.source for cell in _cells(path) if cell.cell_type == "markdown")


def _headings(text: str) -> list[str]:
    return re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)


def _exercises(text: str) -> dict[int, str]:
    """Exercise number -> its text, from the '## Exercises' section up to the next '## ' heading."""
    section = text.split("\n## Exercises", 1)[1].split("\n## ", 1)[0]
    starts = list(ITEM.finditer(section))
    return {int(m.group(1)): section[m.start():(starts[i + 1].start() if i + 1 < len(starts) else len(section))]
            for i, m in enumerate(starts)}


def _number(path: Path) -> str:
    return path.name[:2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_lesson_ends_with_a_summary_exercises_and_references(path):
    headings = _headings(_markdown(path))
    assert "What to remember" in headings, f"{path.name}: no '## What to remember' summary"
    assert "Exercises" in headings, f"{path.name}: no '## Exercises' section"
    assert headings[-1] == "References", f"{path.name}: the last section is {headings[-1]!r}, not 'References'"
    tail = headings[headings.index("What to remember"):]
    expected = ["What to remember", "Exercises", *(["Going further"] if "Going further" in tail else []), "References"]
    assert tail == expected, f"{path.name}: after the lesson come {tail}; expected {expected}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_exercise_is_numbered_in_order_and_says_where_and_how_long(path):
    exercises = _exercises(_markdown(path))
    assert list(exercises) == list(range(1, len(exercises) + 1)), f"{path.name}: exercises numbered {list(exercises)}"
    untagged = [k for k, text in exercises.items() if not TAG.search(text)]
    assert not untagged, f"{path.name}: exercises {untagged} do not say '(in class, N min)' or '(homework, N min)'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_exercise_has_a_worked_answer_apart(path):
    solution = SOLUTIONS / path.name
    assert solution.is_file(), f"{path.name}: no worked answers in notebooks/solutions/{path.name}"
    answered = {int(k) for k in re.findall(r"^### Exercise (\d+)\b", _markdown(solution), flags=re.MULTILINE)}
    missing = sorted(set(_exercises(_markdown(path))) - answered)
    assert not missing, f"notebooks/solutions/{path.name}: no '### Exercise K' for exercises {missing}"
    outputs = [i for i, cell in enumerate(_cells(solution)) if cell.cell_type == "code" and cell.get("outputs")]
    assert not outputs, f"notebooks/solutions/{path.name}: cells {outputs} hold outputs; commit it stripped"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_self_checks_an_exercise_names_exist_and_each_solution_asserts_its_checks(path):
    number = _number(path)
    exercises = _exercises(_markdown(path))
    named = {(int(check.split("_")[1]), check): k for k, text in exercises.items()
             for nb, check in CHECK.findall(text) if nb == number}
    misplaced = [f"exercise {k} names {check}" for (n, check), k in named.items() if n != k]
    assert not misplaced, f"{path.name}: {misplaced}"
    try:
        module = importlib.import_module(f"dynlab.exercises.ex{number}")
    except ModuleNotFoundError:
        assert not named, f"{path.name} names self-checks, but dynlab.exercises.ex{number} does not exist"
        return
    checks = {name for name, f in inspect.getmembers(module, inspect.isfunction)
              if name.startswith("check_") and f.__module__ == module.__name__}
    unknown = sorted({check for _, check in named} - checks)
    assert not unknown, f"{path.name} names checks that dynlab.exercises.ex{number} lacks: {unknown}"
    unnamed = sorted(checks - {check for _, check in named})
    assert not unnamed, f"dynlab.exercises.ex{number} has checks no exercise of {path.name} names: {unnamed}"
    code = "\n".join(cell.source for cell in _cells(SOLUTIONS / path.name) if cell.cell_type == "code")
    unasserted = sorted(c for c in checks if not re.search(rf"assert\s+ex{number}\.{c}\(", code))
    assert not unasserted, f"notebooks/solutions/{path.name} does not assert {unasserted}"


@pytest.mark.parametrize("number, variants", VARIANT_NOTEBOOKS.items())
def test_each_variant_notebook_draws_its_unit(number, variants):
    path = next(p for p in NOTEBOOKS if p.name.startswith(number))
    code = "\n".join(cell.source for cell in _cells(path) if cell.cell_type == "code")
    drawn = re.findall(r"diagrams\.unit_diagram\(([^)]*)\)", code)
    assert drawn, f"{path.name}: no diagrams.unit_diagram(...) cell"
    allowed = {"VARIANT", *(f'"{v}"' for v in variants)}
    assert any(arg.strip() in allowed for arg in drawn), f"{path.name} draws {drawn}, not one of {sorted(allowed)}"


def test_the_exercise_parser_reads_numbered_items_up_to_the_next_section():
    text = "intro\n\n## Exercises\n\n1. First *(in class, 5 min)*\n   more\n2. Second\n\n## References\n\n1. Not one"
    exercises = _exercises(text)
    assert list(exercises) == [1, 2] and "more" in exercises[1] and TAG.search(exercises[1])
    assert not TAG.search(exercises[2])
