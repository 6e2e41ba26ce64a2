"""pyproject.toml, environment.yml and binder/ must name the same packages; the CLI must install."""
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"]}


def _pip_lines(lines) -> set[str]:
    return {_name(line) for line in lines if line.strip() and not line.strip().startswith(("#", "-"))}


def test_environment_yml_mirrors_pyproject():
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1]
    lines = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    assert _pip_lines(lines) == _pyproject_names()


def test_binder_requirements_mirror_pyproject():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert _pip_lines(lines) == _pyproject_names()
    assert any("download.pytorch.org/whl/cpu" in line for line in lines), "Binder should install CPU-only PyTorch"


def test_torch_pins_agree():
    makefile = (ROOT / "Makefile").read_text()
    pins = set(re.findall(r"torch(?:vision)?==[\d.]+", makefile))
    assert pins and pins <= set(re.findall(r"torch(?:vision)?==[\d.]+", (ROOT / "environment.yml").read_text()))
    assert pins <= set(re.findall(r"torch(?:vision)?==[\d.]+", (ROOT / "binder" / "requirements.txt").read_text()))


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert [line.strip() for line in first_block.strip().splitlines()[1:]] == ["make study", "make test"]


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_script_runs():
    exe = shutil.which("dynlab", path=str(Path(sys.executable).parent))
    assert exe, "the dynlab console script is not installed next to this Python"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "flops" in out


def test_repository_url_is_the_one_in_about():
    from dynlab import about

    readme = (ROOT / "README.md").read_text()
    urls = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme))
    assert urls == {about.REPOSITORY}
    assert about.pip_install_line() in readme
