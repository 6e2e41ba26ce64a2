"""Each notebook's run time and peak memory on one CPU core, as Binder's small box would run it.

Binder (repo2docker) gives a notebook about one core and 1-2 GB of memory. This script runs each
notebook top to bottom in the checkout (as Binder does: the notebooks folder, the committed course
models, a fresh run folder), with this process and so the kernel pinned to one core (what
``taskset -c 0`` does), and reads the kernel's peak resident memory (``ru_maxrss``) in a cell added at
the end. It writes ``results/notebooks.csv``, which ``tools/notebook_header.py`` states in each
notebook's first cell. ``--retrain`` measures the other way a notebook runs, with ``RETRAIN = True``
(its models trained live, as a class on a laptop would), by default on two cores: the course's CPU.

    .venv/bin/python tools/measure_notebooks.py            # every notebook; writes results/notebooks.csv
    .venv/bin/python tools/measure_notebooks.py --retrain  # the notebooks that can retrain, on two cores
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

from probed_run import run_with_probe, with_retrain

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results" / "notebooks.csv"
COMMAND = "python tools/measure_notebooks.py"
#: "load": the notebook as it ships (loading the course models); "retrain": with RETRAIN = True
MODES = ("load", "retrain")
FIELDS = ("notebook", "mode", "seconds", "peak_rss_mib", "cores", "torch_threads", "cpu", "torch", "date", "command")
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


def measure(notebook: Path, runs: Path, timeout: int, retrain: bool = False, command: str = COMMAND) -> dict:
    """Run ``notebook`` in its folder with a probe cell appended; its time, peak RSS and what the kernel saw."""
    import nbformat

    env = {"MPLBACKEND": "Agg", "DYNLAB_QUICK": "1", "DYNLAB_CPU_BF16": "0", "DYNLAB_RUNS": str(runs)}
    nb = nbformat.read(notebook, as_version=4)
    if retrain:
        nb = with_retrain(nb)
    # the kernel inherits this process's environment and its cores
    seconds, text = run_with_probe(nb, PROBE, notebook.parent, env, timeout)
    found = re.search(r"MEASURED (\d+) (\d+) (\d+) (\S+)", text)
    if not found:
        raise RuntimeError(f"{notebook.name}: the probe cell printed nothing readable: {text!r}")
    rss_kib, cores, threads, torch_version = found.groups()
    return {"notebook": notebook.name, "mode": "retrain" if retrain else "load", "seconds": round(seconds), "peak_rss_mib": round(int(rss_kib) / 1024),
            "cores": int(cores), "torch_threads": int(threads), "cpu": cpu_name(), "torch": torch_version,
            "date": date.today().isoformat(), "command": command}


def read_rows(path: Path) -> dict[tuple[str, str], dict]:
    """The measurements in ``path`` by (notebook name, mode) (none if it does not exist); rows written before
    modes were recorded are loading runs."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = [{**row, "mode": row.get("mode") or "load"} for row in csv.DictReader(handle)]
    return {(row["notebook"], row["mode"]): row for row in rows}


def write_row(path: Path, row: dict) -> None:
    """Put ``row`` into the CSV at ``path``, keeping the other notebooks' rows (written after each notebook,
    so that a failure later loses nothing measured)."""
    rows = {**read_rows(path), (row["notebook"], row["mode"]): row}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows[key] for key in sorted(rows))
    partial.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names in notebooks/ (default: every one)")
    parser.add_argument("--retrain", action="store_true", help="run with RETRAIN = True (only notebooks that have it)")
    parser.add_argument("--cores", type=int, default=None, help="how many CPU cores (default 1; 2 with --retrain)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"CSV to write (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    names = args.notebooks or sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
                                     if not args.retrain or "RETRAIN = False" in p.read_text())
    missing = [name for name in names if not (NOTEBOOKS / name).is_file()]
    if missing:
        parser.error(f"no such notebook in notebooks/: {', '.join(missing)}")
    cores = args.cores or (2 if args.retrain else 1)
    available = sorted(os.sched_getaffinity(0))
    if not 1 <= cores <= len(available):
        parser.error(f"--cores {cores}: this machine gives {len(available)}")
    os.sched_setaffinity(0, set(available[:cores]))
    command = COMMAND + (" --retrain" if args.retrain else "") + (f" --cores {args.cores}" if args.cores else "")
    for name in names:
        with tempfile.TemporaryDirectory(prefix="dynlab-runs-") as runs:
            row = measure(NOTEBOOKS / name, Path(runs), args.timeout, args.retrain, command)
        write_row(args.out, row)
        print(f"{name} ({row['mode']}): {row['seconds']} s on {row['cores']} cores, peak RSS {row['peak_rss_mib']} MiB",
              flush=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
