"""The notebooks' Colab install cell, run as IPython would run it, with Colab and pip stood in for."""
import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]


def _header():
    spec = importlib.util.spec_from_file_location("notebook_header", ROOT / "tools" / "notebook_header.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_cell(monkeypatch, pip_changes: dict[str, str]) -> tuple[list[str], str]:
    """Runs the cell on a fake Colab; ``pip_changes`` are the versions pip leaves behind."""
    code = TransformerManager().transform_cell(_header().install_cell())
    commands = []
    real_version = importlib.metadata.version
    installed = {}

    def system(command):
        commands.append(command)
        installed.update(pip_changes)

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: installed.get(name) or real_version(name))
    printed = []
    exec(code, {"get_ipython": lambda: types.SimpleNamespace(system=system), "print": printed.append})
    return commands, "\n".join(printed)


def test_on_colab_the_cell_installs_dynlab_and_says_the_kept_packages_are_kept(monkeypatch):
    commands, printed = _run_cell(monkeypatch, {})
    assert len(commands) == 1 and commands[0].startswith("pip install --quiet 'dynlab @ git+")
    assert "kept" in printed and "restart" not in printed


def test_when_pip_replaces_an_imported_package_the_cell_says_to_restart(monkeypatch):
    numpy = importlib.metadata.version("numpy")
    _, printed = _run_cell(monkeypatch, {"numpy": "0.0.1"})
    assert f"numpy {numpy} -> 0.0.1" in printed and "Restart session" in printed


def test_elsewhere_the_cell_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    code = TransformerManager().transform_cell(_header().install_cell())
    exec(code, {"get_ipython": lambda: pytest.fail("the cell ran a shell command outside Colab")})
