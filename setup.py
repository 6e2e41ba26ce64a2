"""The build's one addition to pyproject.toml: the package carries the committed results its notebooks read.

Outside a checkout (a pip install from the repository, Colab) notebooks 08 and 09 show the committed
Adiac grid and quick study. The files stay where the project writes them, under ``results/``; building
the package copies those listed in ``dynlab.experiments.committed.SHIPPED`` into ``dynlab/results/``.
"""
import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _committed():
    # read standalone: importing the dynlab package would import torch, which a build environment lacks
    spec = importlib.util.spec_from_file_location("_committed", ROOT / "dynlab" / "experiments" / "committed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithResults(build_py):
    def run(self):
        super().run()
        committed = _committed()
        missing = [name for name in committed.SHIPPED if not (ROOT / "results" / name).is_file()]
        if missing:
            raise SystemExit(f"cannot build dynlab: results/{', results/'.join(missing)} missing "
                             "(build from a full clone of the repository)")
        for name in committed.SHIPPED:
            target = Path(self.build_lib) / "dynlab" / committed.PACKAGED / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / "results" / name, target)


setup(cmdclass={"build_py": BuildWithResults})
