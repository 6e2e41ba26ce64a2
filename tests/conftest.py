"""Settings for the whole test suite.

Training on a CPU with AMX uses bfloat16 autocast (``dynlab.device``). The tests compare losses and
outputs with float32 arithmetic, so they run in float32 on any CPU, and notebooks started from them
(nbval kernels inherit the environment) do too; ``tests/test_cpu_bf16.py`` tests the bfloat16 path.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

os.environ["DYNLAB_CPU_BF16"] = "0"

#: test folders whose tensors are tiny: one intra-op thread is fastest there and avoids OpenMP spinning
ONE_THREAD_FOLDERS = ("layers", "kernels")


@pytest.fixture(autouse=True, scope="module")
def _threads(request):
    """One thread for the modules of ``ONE_THREAD_FOLDERS`` and those that set ``ONE_THREAD = True``;
    the thread count is restored after each module, so no setting leaks into the next."""
    path = Path(str(request.fspath))
    one = getattr(request.module, "ONE_THREAD", False) or path.parent.name in ONE_THREAD_FOLDERS
    threads = torch.get_num_threads()
    if one:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class AloneRun(NamedTuple):
    """One run of ``tools/run_alone.py --keep`` over the course notebooks."""

    done: subprocess.CompletedProcess  #: the tool's exit status and printed lines
    kept: Path  #: each notebook as executed, outputs included (``<name>.ipynb``)


@pytest.fixture(scope="session")
def alone_run(tmp_path_factory) -> AloneRun:
    """Every course notebook run once alone from the wheel, shared by the tests that need it:
    ``tests/test_alone.py`` checks the run, ``tests/test_book.py`` renders the book from what it kept."""
    root = Path(__file__).resolve().parents[1]
    notebooks = sorted(path.name for path in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    kept = tmp_path_factory.mktemp("executed")
    done = subprocess.run([sys.executable, str(root / "tools" / "run_alone.py"), *notebooks, "--timeout", "900",
                           "--keep", str(kept)], capture_output=True, text=True, timeout=2900)
    return AloneRun(done, kept)
