"""Lessons that fit their class time: notebook 08 states 40 minutes, so its markdown stays short enough to
read in class (every markdown cell counts: objectives, lesson, exercises, summary, "Going further" and
references)."""
from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: the most words of markdown notebook 08 may hold
ADIAC_WORDS = 1500


def markdown_words(path: Path) -> int:
    """Words (whitespace-separated) of all markdown cells of the notebook at ``path``, joined."""
    nb = nbformat.read(path, as_version=4)
    return len("\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown").split())


def test_time_series_lesson_fits_its_class_time():
    words = markdown_words(NOTEBOOKS / "08_time_series_adiac.ipynb")
    assert words <= ADIAC_WORDS, (f"08_time_series_adiac.ipynb has {words:,} words of markdown, more than "
                                  f"{ADIAC_WORDS:,}: trim it, or move engineering material out of the lesson")


def test_markdown_words_counts_every_markdown_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Title\n\nthree more words"),
                nbformat.v4.new_code_cell("x = 'not counted at all'"),
                nbformat.v4.new_markdown_cell("- one\n- two")]
    path = tmp_path / "counted.ipynb"
    nbformat.write(nb, path)
    assert markdown_words(path) == 2 + 3 + 4
