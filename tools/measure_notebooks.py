"""Each notebook's run time and peak memory on one CPU core, as Binder's small box would run it.

Binder (repo2docker) gives a notebook about one core and 1-2 GB of memory. This script runs each
notebook top to bottom in the checkout (as Binder does: the notebooks folder, the committed course
models, a fresh run folder), with this process and so the kernel pinned to one core (what
``taskset -c 0`` does), and reads the kernel's peak resident memory (``ru_maxrss``) in a cell added at
the end. It writes ``results/notebooks.csv``, which ``tools/notebook_header.py`` states in each
notebook's first cell.

    .venv/bin/python tools/measure_notebooks.py            # every notebook; writes results/notebooks.csv
    .venv/bin/python tools/measure_notebooks.py 02_global_soft_attention.ipynb --out /tmp/n.csv

Nothing else should run on the machine meanwhile: the times are the point.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import sys
import tempfile
from datetime import date
from pathlib import Path

from probed_run import run_with_probe

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results" / "notebooks.csv"
COMMAND = "python tools/measure_notebooks.py"
FIELDS = ("notebook", "seconds", "peak_rss_mib", "cores", "torch_threads", "cpu", "torch", "date", "command")
PROBE = ("import os, resource, torch\n"
         "print('MEASURED', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(os.sched_getaffinity(0)), "
         "torch.get_num_threads(), torch.__version__)")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(notebook: Path, runs: Path, timeout: int) -> dict:
    """Run ``notebook`` in its folder with a probe cell appended; its time, peak RSS and what the kernel saw."""
    import nbformat

    env = {"MPLBACKEND": "Agg", "DYNLAB_QUICK": "1", "DYNLAB_CPU_BF16": "0", "DYNLAB_RUNS": str(runs)}
    # the kernel inherits this process's environment and its one core
    seconds, text = run_with_probe(nbformat.read(notebook, as_version=4), PROBE, notebook.parent, env, timeout)
    found = re.search(r"MEASURED (\d+) (\d+) (\d+) (\S+)", text)
    if not found:
        raise RuntimeError(f"{notebook.name}: the probe cell printed nothing readable: {text!r}")
    rss_kib, cores, threads, torch_version = found.groups()
    return {"notebook": notebook.name, "seconds": round(seconds), "peak_rss_mib": round(int(rss_kib) / 1024),
            "cores": int(cores), "torch_threads": int(threads), "cpu": cpu_name(), "torch": torch_version,
            "date": date.today().isoformat(), "command": COMMAND}


def read_rows(path: Path) -> dict[str, dict]:
    """The measurements in ``path`` by notebook name (none if it does not exist)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["notebook"]: row for row in csv.DictReader(handle)}


def write_row(path: Path, row: dict) -> None:
    """Put ``row`` into the CSV at ``path``, keeping the other notebooks' rows (written after each notebook,
    so that a failure later loses nothing measured)."""
    rows = {**read_rows(path), row["notebook"]: row}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows[name] for name in sorted(rows))
    partial.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names in notebooks/ (default: every one)")
    parser.add_argument("--core", type=int, default=0, help="the CPU core to run on (default 0)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"CSV to write (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    names = args.notebooks or sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [name for name in names if not (NOTEBOOKS / name).is_file()]
    if missing:
        parser.error(f"no such notebook in notebooks/: {', '.join(missing)}")
    if args.core not in os.sched_getaffinity(0):
        parser.error(f"core {args.core} is not available here; choose one of {sorted(os.sched_getaffinity(0))}")
    os.sched_setaffinity(0, {args.core})
    for name in names:
        with tempfile.TemporaryDirectory(prefix="dynlab-runs-") as runs:
            row = measure(NOTEBOOKS / name, Path(runs), args.timeout)
        write_row(args.out, row)
        print(f"{name}: {row['seconds']} s on {row['cores']} core, peak RSS {row['peak_rss_mib']} MiB", flush=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
