#!/usr/bin/env bash
# The explorer and the pictures on ipywidgets 7.7.1, the version Colab ships: installs it (from PyPI)
# into a temporary folder placed before the project's environment, and runs their headless tests there.
# Usage: tools/check_ipywidgets7.sh [python]   (default: .venv/bin/python)
set -euo pipefail
python="${1:-.venv/bin/python}"
overlay="$(mktemp -d)"
trap 'rm -rf "$overlay"' EXIT
"$python" -m pip install --quiet --no-deps --target "$overlay" \
    "ipywidgets==7.7.1" "widgetsnbextension==3.6.*" "jupyterlab_widgets==1.*" ipython_genutils
PYTHONPATH="$overlay" "$python" - <<'PY'
import ipywidgets, sys
assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
print(f"ipywidgets {ipywidgets.__version__} from {ipywidgets.__file__}", file=sys.stderr)
PY
PYTHONPATH="$overlay" MPLBACKEND=Agg "$python" -m pytest -q -p no:cacheprovider \
    tests/test_viz_widgets.py tests/test_explorer.py tests/test_device_handling.py
