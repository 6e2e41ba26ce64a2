"""``tools/book.py``: the course rendered with its outputs as a static HTML book (``make book``).

The fast tests render hand-made executed notebooks; the slow one renders the whole course from the
notebooks that ``tests/test_alone.py``'s run executed (the ``alone_run`` fixture: one run serves both).
"""
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: a PNG embedded in a page, as nbconvert writes an image output (the template's CSS has one of its own)
EMBEDDED_PNG = re.compile(r'<img[^>]*\ssrc="data:image/png;base64,')
#: code that draws a figure
DRAWS = re.compile(r"\b(?:plt|viz|diagrams)\.\w+\(")
#: a 1x1 PNG
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WIDGET = "application/vnd.jupyter.widget-view+json"


def load_book():
    spec = importlib.util.spec_from_file_location("book", ROOT / "tools" / "book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book = load_book()
NOTE = html.escape(book.WIDGET_NOTE)


def executed_notebook(*, error: bool = False) -> nbformat.NotebookNode:
    """A notebook as ``tools/run_alone.py --keep`` writes it: the check cell first, then a figure, a widget."""
    check = nbformat.v4.new_code_cell("print('dynlab from /elsewhere')", execution_count=1,
                                      metadata={"tags": [book.CHECK_TAG]})
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text="dynlab from /elsewhere\n")]
    figure = nbformat.v4.new_code_cell("viz.show_samples()", execution_count=2)
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"})]
    widget = nbformat.v4.new_code_cell("Explorer()", execution_count=3)
    widget.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET: {"model_id": "f00", "version_major": 2, "version_minor": 0}, "text/plain": "VBox(children=...)"})]
    if error:
        widget.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="no such layer",
                                                 traceback=["Traceback (most recent call last)", "ValueError"])]
    nb = nbformat.v4.new_notebook(cells=[check, nbformat.v4.new_markdown_cell("# 00 · Start here"), figure, widget])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    return nb


def write_executed(folder: Path, name: str = "00_start_here.ipynb", **options) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed_notebook(**options), folder / name)
    return folder


def test_an_executed_notebook_becomes_a_page_with_its_figure_and_the_widget_note(tmp_path, capsys):
    executed = write_executed(tmp_path / "executed")
    out = tmp_path / "book"
    assert book.main(["00_start_here", "--executed", str(executed), "--out", str(out)]) == 0
    page = (out / "00_start_here.html").read_text()
    assert len(EMBEDDED_PNG.findall(page)) == 1
    assert page.count(NOTE) == 1
    assert WIDGET not in page and "widget-state+json" not in page, "a widget left for a CDN widget manager"
    assert "dynlab from" not in page, "run_alone's check cell is not part of the course"
    assert 'href="index.html"' in page
    index = (out / "index.html").read_text()
    assert 'href="00_start_here.html"' in index
    description = book.readme_table((ROOT / "notebooks" / "README.md").read_text())["00_start_here"]
    assert book.inline_markdown(description) in index
    assert "quick profile" in index and re.search(r"commit (\w+|unknown)", index)
    printed = capsys.readouterr().out
    assert f"wrote {out / '00_start_here.html'}" in printed and f"wrote {out / 'index.html'}" in printed


def test_the_teachers_guide_is_rendered_and_linked_when_there_is_one(tmp_path, monkeypatch):
    guide = tmp_path / "TEACHING.md"
    guide.write_text("# Teacher's guide\n\n| lesson | notebook |\n| --- | --- |\n"
                     "| 1 | [start](00_start_here.ipynb) |\n")
    monkeypatch.setattr(book, "TEACHING", guide)
    executed = write_executed(tmp_path / "executed")
    assert book.main(["00_start_here", "--executed", str(executed), "--out", str(tmp_path / "book")]) == 0
    teaching = (tmp_path / "book" / "teaching.html").read_text()
    assert "<table>" in teaching and 'href="00_start_here.html"' in teaching and 'href="index.html"' in teaching
    assert 'href="teaching.html"' in (tmp_path / "book" / "index.html").read_text()

    monkeypatch.setattr(book, "TEACHING", tmp_path / "missing.md")
    assert book.main(["00_start_here", "--executed", str(executed), "--out", str(tmp_path / "book")]) == 0
    assert not (tmp_path / "book" / "teaching.html").exists()
    assert "teaching.html" not in (tmp_path / "book" / "index.html").read_text()


def test_the_readme_table_gives_each_course_notebook_its_description():
    table = "| notebook | what it teaches |\n| --- | --- |\n| `00_start_here` | set-up, the `quick` profile |\n"
    assert book.readme_table(table) == {"00_start_here": "set-up, the `quick` profile"}
    assert book.inline_markdown("the `quick` profile") == "the <code>quick</code> profile"
    descriptions = book.readme_table((ROOT / "notebooks" / "README.md").read_text())
    assert sorted(descriptions) == [Path(name).stem for name in NOTEBOOKS]
    assert all(descriptions.values())


def test_an_unknown_notebook_is_one_line_naming_it(tmp_path, capsys):
    assert book.main(["99_nothing", "--executed", str(tmp_path), "--out", str(tmp_path / "book")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "99_nothing.ipynb" in error
    assert not (tmp_path / "book").exists()


def test_a_failed_notebook_leaves_the_previous_book_as_it_was(tmp_path, capsys):
    out = tmp_path / "book"
    assert book.main(["00_start_here", "--executed", str(write_executed(tmp_path / "good")), "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    broken = write_executed(tmp_path / "broken", error=True)
    capsys.readouterr()
    assert book.main(["00_start_here", "--executed", str(broken), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "00_start_here.ipynb" in error and "ValueError" in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["book", "broken", "good"], "a partial book is left"


def test_a_build_interrupted_while_writing_leaves_no_half_book(tmp_path):
    out = tmp_path / "book"
    out.mkdir()
    (out / "index.html").write_text("the previous book")
    with pytest.raises(KeyboardInterrupt):
        with book.staging(out) as folder:
            (folder / "index.html").write_text("half of the new one")
            raise KeyboardInterrupt
    assert [path.name for path in tmp_path.iterdir()] == ["book"]
    assert (out / "index.html").read_text() == "the previous book"


def test_a_folder_that_is_not_a_book_is_not_replaced(tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert book.main(["00_start_here", "--executed", str(write_executed(tmp_path / "executed")),
                      "--out", str(out)]) == 1
    assert "no book" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["mine.txt"]


@pytest.mark.slow
def test_a_notebook_that_fails_to_run_stops_the_build_naming_it(tmp_path, capsys):
    """The path without --executed: tools/run_alone.py builds the wheel, the notebook fails (it is not there)."""
    with pytest.raises(book.BookError, match=r"^nope\.ipynb failed when run alone"):
        book.execute(["nope.ipynb"], 60, tmp_path)
    assert "nope.ipynb: FAILED" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(3000)  # the first test to ask for alone_run waits for every notebook to run
def test_the_book_of_the_whole_course(alone_run, tmp_path):
    assert alone_run.done.returncode == 0, "the notebooks did not all run alone (tests/test_alone.py says why)"
    out = tmp_path / "book"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "book.py"), "--executed", str(alone_run.kept),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    index = (out / "index.html").read_text()
    for name in NOTEBOOKS:
        stem = Path(name).stem
        assert f'href="{stem}.html"' in index, f"index.html does not link {stem}.html"
        page = (out / f"{stem}.html").read_text()
        nb = nbformat.read(alone_run.kept / name, as_version=4)
        outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
        images = sum("image/png" in output.get("data", {}) for output in outputs)
        widgets = sum(WIDGET in output.get("data", {}) for output in outputs)
        assert len(EMBEDDED_PNG.findall(page)) == images, f"{stem}.html: not every figure is embedded"
        if any(DRAWS.search(cell.source) for cell in nb.cells if cell.cell_type == "code"):
            assert images >= 1, f"{name} draws figures but none is in its page"
        assert page.count(NOTE) == widgets, f"{stem}.html: a widget output without the note"
        assert "Traceback (most recent call last)" not in page, f"{stem}.html shows a traceback"
        assert 'href="index.html"' in page
