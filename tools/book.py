"""Render the course as it runs: every notebook executed, with its outputs, as a static HTML book.

    make book                                                         # the whole course into build/book
    DYNLAB_QUICK=1 DYNLAB_CPU_BF16=0 MPLBACKEND=Agg \\
        .venv/bin/python tools/book.py --out build/book [NOTEBOOK ...]  # what make book runs; some notebooks
    .venv/bin/python tools/book.py --executed FOLDER                  # notebooks executed before, e.g. by
                                                                      # tools/run_alone.py --keep FOLDER

Without ``--executed`` the notebooks are first run by ``tools/run_alone.py --keep`` as a student outside
the checkout runs them: the built wheel, each notebook alone in an empty folder, the quick profile,
the shipped course models. A notebook that fails stops the build: exit 1, one line naming it and
where its executed copy is kept for reading.

Each notebook becomes ``NN_name.html`` (nbconvert's lab template; figures embedded as base64 PNGs).
``index.html`` lists the pages with the descriptions of the table in ``notebooks/README.md``, says
which commit and date built the book, and links the teacher's guide (``notebooks/TEACHING.md``,
rendered to ``teaching.html``) when there is one. Interactive widgets cannot run in a static page:
each widget output is replaced by a note saying where it runs. Pages are written into a folder beside
``--out`` that replaces it only once every page is done, so an interrupted build leaves the previous
book (or none), never half of one. The book is plain files: host the folder anywhere (the figures
need nothing else; formulas are typeset by MathJax, which nbconvert's pages load from its CDN).
"""
from __future__ import annotations

import argparse
import contextlib
import html
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import mistune
import nbformat
from nbconvert import HTMLExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_alone import CHECK_TAG  # noqa: E402 - the tag of the check cell run_alone adds to each notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TEACHING = NOTEBOOKS / "TEACHING.md"
RUN_ALONE = ROOT / "tools" / "run_alone.py"

TITLE = "dynlab: dynamic convolutional neural networks, a notebook course"
ABOUT = ("One notebook per variant of ResNet-18's 3x3 convolution: each builds the layer from scratch, "
         "trains it on three tasks and shows what its attention does.")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("Interactive widget: it runs when this notebook runs in JupyterLab, Colab or Binder "
               "(the badges at the top open it there); a static page cannot run it.")
NOTE_STYLE = "border-left: 3px solid #999; background: #f5f5f5; padding: 0.4em 0.8em"
#: a link to a course notebook, as notebooks and the teacher's guide write it
NOTEBOOK_LINK = re.compile(r'href="(?:\./)?(?:notebooks/)?(\d\d_\w+)\.ipynb(#[^"]*)?"')


class BookError(Exception):
    """A reason the book cannot be built, told in one line."""


# ----------------------------------------------------------------------------- which notebooks


def course_notebooks() -> list[str]:
    return sorted(path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def choose(requested: list[str]) -> list[str]:
    """The course notebooks named (``02_global_soft_attention``, with or without ``.ipynb``), or all."""
    course = course_notebooks()
    if not requested:
        return course
    names = [Path(name).name if name.endswith(".ipynb") else Path(name).name + ".ipynb" for name in requested]
    unknown = [name for name in names if name not in course]
    if unknown:
        raise BookError(f"no course notebook named {', '.join(unknown)} in notebooks/; "
                        f"the course has {', '.join(course)}")
    return names


# ----------------------------------------------------------------------------- executing them


def execute(names: list[str], timeout: int, folder: Path) -> None:
    """Run the notebooks alone from the wheel (tools/run_alone.py), keeping each executed copy in folder."""
    command = [sys.executable, str(RUN_ALONE), *names, "--timeout", str(timeout), "--keep", str(folder)]
    failed = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as run:
        for line in run.stdout:
            print(line, end="", flush=True)
            if ": FAILED: " in line:
                failed.append(line.split(":", 1)[0])
    if failed:
        raise BookError(f"{', '.join(failed)} failed when run alone (executed copies kept in {folder}); "
                        "no book written")
    if run.returncode != 0:
        raise BookError(f"tools/run_alone.py failed (exit {run.returncode}, output above); no book written")


def read_executed(folder: Path, name: str) -> nbformat.NotebookNode:
    """The executed notebook, refused if it is missing or holds an error output."""
    path = folder / name
    if not path.is_file():
        raise BookError(f"no executed {name} in {folder}; run tools/run_alone.py --keep {folder} {name}")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                error = ": ".join(filter(None, [output.ename, *output.evalue.splitlines()[:1]]))
                raise BookError(f"{name} in {folder} holds an error ({error}); "
                                "run it again before building the book")
    return nb


# ----------------------------------------------------------------------------- notebook pages


def without_check_cell(nb: nbformat.NotebookNode) -> None:
    """Drop the cell run_alone puts first to check where dynlab comes from (it is not part of the course)
    and number the executed cells from 1 again, as a student's run numbers them."""
    nb.cells = [cell for cell in nb.cells if CHECK_TAG not in cell.get("metadata", {}).get("tags", [])]
    executed = [cell for cell in nb.cells if cell.cell_type == "code" and cell.execution_count is not None]
    for count, cell in enumerate(executed, start=1):
        cell.execution_count = count
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count


def widgets_as_notes(nb: nbformat.NotebookNode) -> None:
    """Replace each widget output by the note, and drop the widget state.

    nbconvert writes a widget output as a script that a widget manager fetched from a CDN would draw,
    from the state saved in the notebook's metadata; the kernel behind the widget is gone, so even
    drawn it would not respond. The note says where it does."""
    for cell in nb.cells:
        for index, output in enumerate(cell.get("outputs", [])):
            if WIDGET_VIEW in output.get("data", {}):
                note = f'<p class="dynlab-widget-note" style="{NOTE_STYLE}"><em>{html.escape(WIDGET_NOTE)}</em></p>'
                cell.outputs[index] = nbformat.v4.new_output("display_data", data={"text/html": note})
    nb.metadata.pop("widgets", None)


def navigation(names: list[str], name: str) -> str:
    """A markdown line linking the index and the notebooks before and after this one."""
    at = names.index(name)
    links = ["[The course](index.html)"]
    if at > 0:
        links.append(f"previous: [{Path(names[at - 1]).stem}]({page_name(names[at - 1])})")
    if at + 1 < len(names):
        links.append(f"next: [{Path(names[at + 1]).stem}]({page_name(names[at + 1])})")
    return " · ".join(links)


def page_name(notebook: str) -> str:
    return Path(notebook).stem + ".html"


def notebook_page(nb: nbformat.NotebookNode, name: str, names: list[str]) -> str:
    without_check_cell(nb)
    widgets_as_notes(nb)
    nav = navigation(names, name)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(nav))
    nb.cells.append(nbformat.v4.new_markdown_cell(nav))
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nb, resources={"metadata": {"name": f"{Path(name).stem} · dynlab"}})
    return body


def linked_to_pages(page: str, names: list[str]) -> str:
    """Point links to course notebooks (``02_global_soft_attention.ipynb``) at their pages in the book."""
    stems = {Path(name).stem for name in names}

    def relink(match: re.Match) -> str:
        if match.group(1) not in stems:
            return match.group(0)
        return f'href="{match.group(1)}.html{match.group(2) or ""}"'

    return NOTEBOOK_LINK.sub(relink, page)


# ----------------------------------------------------------------------------- index and teacher's guide


def readme_table(markdown: str) -> dict[str, str]:
    """``{notebook stem: description}`` from the rows "| `NN_name` | what it teaches |" of notebooks/README.md."""
    row = re.compile(r"^\|\s*`(\d\d_\w+)`\s*\|\s*(.*?)\s*\|\s*$")
    return {match.group(1): match.group(2) for match in map(row.match, markdown.splitlines()) if match}


def inline_markdown(text: str) -> str:
    """One line of markdown as HTML, without the paragraph around it."""
    rendered = mistune.html(text).strip()
    return rendered.removeprefix("<p>").removesuffix("</p>")


def built_by() -> str:
    """'commit abc1234 on 2025-01-31 12:00 UTC' (the commit 'unknown' outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        if git("status", "--porcelain", "--untracked-files=no").strip():
            commit += " with uncommitted changes"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"commit {commit} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def index_page(names: list[str], descriptions: dict[str, str], teaching: bool, built: str) -> str:
    rows = "\n".join(f'<tr><td><a href="{page_name(name)}">{Path(name).stem}</a></td>'
                     f"<td>{inline_markdown(descriptions.get(Path(name).stem, ''))}</td></tr>" for name in names)
    guide = '<p><a href="teaching.html">The teacher\'s guide</a>: lesson plans for the course.</p>' if teaching else ""
    body = f"""<h1>{html.escape(TITLE)}</h1>
<p>{html.escape(ABOUT)}</p>
{guide}
<table>
<thead><tr><th>notebook</th><th>what it teaches</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p class="built">Built by dynlab {html.escape(built)}. Every notebook ran top to bottom in the quick profile
(the course profile), loading the shipped course models, as a student outside the checkout runs it
(tools/run_alone.py: the built wheel, each notebook alone). Interactive widgets run only in JupyterLab,
Colab or Binder.</p>"""
    return standalone_page(TITLE, body)


def teaching_page(markdown: str) -> str:
    body = f'<p><a href="index.html">The course</a></p>\n{mistune.html(markdown)}'
    return standalone_page("Teacher's guide · dynlab", body)


def standalone_page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; vertical-align: top; padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }}
code {{ background: #f4f4f4; padding: 0 0.2em; }}
pre {{ background: #f4f4f4; padding: 0.6em; overflow-x: auto; }}
.built {{ color: #555; font-size: 0.9em; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


# ----------------------------------------------------------------------------- writing the book


@contextlib.contextmanager
def staging(out: Path):
    """A folder beside ``out`` to write the book into; it replaces ``out`` when the block ends without error."""
    if out.exists() and not (out / "index.html").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise BookError(f"{out} holds files but no book (no index.html); name a new or empty folder with --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    try:
        yield partial
        partial.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            out.rename(old / out.name)
            partial.rename(out)
            shutil.rmtree(old)
        else:
            partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def build(names: list[str], executed: Path, out: Path) -> list[Path]:
    """Render the executed notebooks, the index and the teacher's guide into ``out``; return the pages."""
    descriptions = readme_table((NOTEBOOKS / "README.md").read_text(encoding="utf-8"))
    teaching = TEACHING.is_file()
    pages = {page_name(name): notebook_page(read_executed(executed, name), name, names) for name in names}
    if teaching:
        pages["teaching.html"] = teaching_page(TEACHING.read_text(encoding="utf-8"))
    pages["index.html"] = index_page(names, descriptions, teaching, built_by())
    with staging(out) as folder:
        for file_name, page in pages.items():
            (folder / file_name).write_text(linked_to_pages(page, names), encoding="utf-8")
    return [out / file_name for file_name in pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="course notebooks to put in the book (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book", help="the book's folder")
    parser.add_argument("--executed", type=Path, metavar="FOLDER",
                        help="render the notebooks executed in FOLDER (by tools/run_alone.py --keep); run none")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may take when the notebooks run")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    executed = args.executed
    try:
        names = choose(args.notebooks)
        if executed is None:
            executed = Path(tempfile.mkdtemp(prefix="dynlab-book-executed-"))
            execute(names, args.timeout, executed)
        pages = build(names, executed, args.out)
    except BookError as error:
        print(f"book: {error}", file=sys.stderr)
        return 1
    if args.executed is None:
        shutil.rmtree(executed)
    for page in pages:
        print(f"wrote {page}")
    print(f"book: {len(pages)} pages in {args.out}, built in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
