"""Run notebooks as a user outside the checkout would: the built wheel installed, each notebook alone.

For each notebook: the wheel of this checkout is installed (not editable) into a fresh folder T, the
notebook is copied into an empty folder, and executed there with nbclient by a kernel whose Python
finds dynlab in T before anything else (the project environment's packages, torch included, are
reused: nothing is downloaded). The course models are put where an installed dynlab caches what it
fetches (``DYNLAB_DATA``'s ``course-models/<branch>``, in a fresh folder), as if fetched before, so the
notebooks load them without the network. The kernel first checks that ``dynlab.__file__`` lies outside the
checkout, so an editable install cannot make the check pass falsely.

    .venv/bin/python tools/run_alone.py 00_start_here.ipynb 09_comparison_study.ipynb
    .venv/bin/python tools/run_alone.py --all --timeout 1200
    .venv/bin/python tools/run_alone.py --all --keep build/executed   # keep each executed notebook (tools/book.py)
    ENV/bin/python tools/run_alone.py --all --installed   # dynlab already installed in ENV (tools/colab_like.sh)

Exit status 0 when every notebook ran without an error and none printed that it found no committed
results (what 08 and 09 read: the wheel carries them); each notebook's time is printed. With ``--keep
FOLDER`` each notebook is also written there as executed, with its outputs (``FOLDER/<name>.ipynb``),
a failed one included so that its error can be read; the check cell the tool puts first carries the
tag ``run-alone-check`` (``CHECK_TAG``). Its kernels then draw figures inline as in JupyterLab (without
``--keep`` they use Agg, and a notebook without ``%matplotlib inline`` shows a figure as text only).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ("import dynlab, pathlib; here = pathlib.Path(dynlab.__file__).resolve(); "
         f"assert {str(ROOT)!r} not in str(here), f'dynlab comes from the checkout: {{here}}'; "
         "print('dynlab from', here.parent)")
#: the tag of the check cell put first in each notebook (tools/book.py leaves it out of the book)
CHECK_TAG = "run-alone-check"
#: matplotlib's backend in a Jupyter kernel by default: it puts each figure shown into the notebook as a PNG
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: what a notebook prints when it cannot find the committed results it would show
NOT_FOUND = ("No committed results found", "No committed study found")


def build_wheel(python: str, folder: Path) -> Path:
    subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(folder),
                    str(ROOT)], check=True)
    return next(folder.glob("dynlab-*.whl"))


def install(python: str, wheel: Path, target: Path) -> None:
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)


def seed_cache(data: Path) -> None:
    """Copy the committed course models into the cache of a ``DYNLAB_DATA`` folder ``data``."""
    sys.path.insert(0, str(ROOT))
    from dynlab import about
    from dynlab.experiments.course_models import COMMITTED

    shutil.copytree(ROOT / COMMITTED, data / "course-models" / about.BRANCH)


def run_notebook(notebook: Path, target: Path | None, data: Path, timeout: int, keep: Path | None = None) -> float:
    import nbformat
    from nbclient import NotebookClient

    folder = Path(tempfile.mkdtemp(prefix="alone-"))
    try:
        copy = folder / notebook.name
        shutil.copy(notebook, copy)
        nb = nbformat.read(copy, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(CHECK, metadata={"tags": [CHECK_TAG]}))
        # a kept notebook is read as a student sees it: figures drawn inline, JupyterLab's default
        backend = "Agg" if keep is None else INLINE_BACKEND
        env = {**os.environ, "MPLBACKEND": backend, "DYNLAB_DATA": str(data)}
        if target is not None:
            env["PYTHONPATH"] = str(target)
        started = time.perf_counter()
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
        old = dict(os.environ)
        os.environ.update(env)  # the kernel inherits this process's environment
        try:
            client.execute(cwd=str(folder))
        finally:
            os.environ.clear()
            os.environ.update(old)
            if keep is not None:
                nbformat.write(nb, keep / notebook.name)
        printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
        missing = [line for line in printed.splitlines() if line.startswith(NOT_FOUND)]
        if missing:
            raise RuntimeError(f"it found no committed results: {missing[0]}")
        return time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names in notebooks/")
    parser.add_argument("--all", action="store_true", help="every notebook")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may take")
    parser.add_argument("--installed", action="store_true",
                        help="use the dynlab installed in this Python's environment (not editable) instead of the wheel")
    parser.add_argument("--keep", type=Path, metavar="FOLDER",
                        help="write each executed notebook with its outputs (figures drawn inline) to "
                             "FOLDER/<name>.ipynb, a failed one too")
    args = parser.parse_args(argv)
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) if args.all else args.notebooks
    if not names:
        parser.error("name the notebooks to run, or --all")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dynlab-alone-"))
    failed = []
    try:
        target = None if args.installed else work / "site"
        if target is not None:
            install(sys.executable, build_wheel(sys.executable, work / "wheel"), target)
        seed_cache(work / "data")
        for name in names:
            try:
                seconds = run_notebook(ROOT / "notebooks" / name, target, work / "data", args.timeout, args.keep)
                print(f"{name}: ran alone in {seconds:.0f} s")
            except Exception as error:  # noqa: BLE001 - report every notebook, then fail
                failed.append(name)
                print(f"{name}: FAILED: {type(error).__name__}: {str(error).splitlines()[-1] if str(error) else ''}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
