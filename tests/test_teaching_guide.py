"""The teacher's guide (``notebooks/TEACHING.md``) agrees with the notebooks it plans with: its table of
exercises lists each notebook's class time and its exercises *in class* and as *homework* with the
minutes their tags give, and every notebook has a place in both lesson plans."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_course_plan import NOTEBOOKS, _exercises, _markdown

GUIDE = Path(__file__).resolve().parents[1] / "notebooks" / "TEACHING.md"
TAGGED = re.compile(r"\*\((in class|homework), (\d+)(?:-\d+)? min\)\*")


def _section(title: str) -> str:
    return GUIDE.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_rows(text: str) -> dict[str, list[str]]:
    """First column (a notebook's name in backticks) -> its cells, for every row of the tables in ``text``."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) > 1:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _listed(cell: str) -> list[tuple[int, int]]:
    """(exercise, minutes) pairs of a cell such as '1 Orientation (5), 3 A baseline (10)'."""
    return [(int(n), int(m)) for n, m in re.findall(r"(?:^|, )(\d+) .+?\((\d+)\)(?=,|$)", cell)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_exercise_table_matches_the_notebooks_tags(path):
    rows = _table_rows(_section("Exercises by notebook"))
    assert path.stem in rows, f"notebooks/TEACHING.md: no row for {path.stem} in 'Exercises by notebook'"
    class_time, in_class, homework = rows[path.stem]
    text = _markdown(path)
    stated = re.search(r"\*\*Class time:?\*\*\s*(?:about\s+)?(\d+)\s*min", text)
    assert stated and class_time == f"{stated.group(1)} min", \
        f"TEACHING.md gives {path.stem} {class_time!r}; the notebook says {stated.group(0) if stated else 'nothing'}"
    tags = {k: TAGGED.search(t).groups() for k, t in _exercises(text).items()}
    expected = {where: [(k, int(m)) for k, (w, m) in tags.items() if w == where] for where in ("in class", "homework")}
    assert _listed(in_class) == expected["in class"], f"{path.stem}: the guide's in-class list differs from the tags"
    assert _listed(homework) == expected["homework"], f"{path.stem}: the guide's homework list differs from the tags"


@pytest.mark.parametrize("plan", ["Six sessions of 90 minutes", "Nine sessions of 60 minutes"])
def test_every_notebook_has_a_session_in_each_plan(plan):
    text = GUIDE.read_text().split(f"### {plan}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    sessions = [line for line in text.splitlines() if re.match(r"\| \d", line)]
    named = {n for line in sessions for n in re.findall(r"`(\d\d)`", line.split("|")[2])}
    missing = sorted({p.name[:2] for p in NOTEBOOKS} - named)
    assert not missing, f"notebooks/TEACHING.md, '{plan}': no session for notebooks {missing}"


def test_the_list_reader_reads_numbers_names_and_minutes():
    assert _listed('1 Orientation (5), 5 "Constant across all ten folds." (5)') == [(1, 5), (5, 5)]
    assert _listed("") == []
