# Set-up is automatic: every target first makes .venv with pinned PyTorch and dynlab (editable). The
# study and the MAC table need only dynlab and the Adiac data (CORE); the notebooks, the tests and the
# book add JupyterLab and the test tools (STAMP), which a first `make study` does not wait for.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.core-stamp
STAMP := $(VENV)/.installed-stamp
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: install study test lab flops clean-venv screenshots book

$(CORE): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_PIN)
	$(PY) -m pip install -e ".[adiac]" $(TORCH_PIN)
	touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install -e ".[lab,test]" $(TORCH_PIN)
	touch $(STAMP)

install: $(STAMP)

# The course (make study, make lab, make test) is float32 on every CPU: with AMX the engine would train
# in bfloat16 autocast, and the course's results would then depend on the machine.
# Two cells train at a time, each on half the cores: the course's small models use a second thread of
# one process poorly, so on two cores the 24 cells finish sooner as two one-thread processes.
study: $(CORE)
	DYNLAB_CPU_BF16=0 $(VENV)/bin/dynlab study --profile quick --jobs 2 --out runs/study-quick

# Every notebook under nbval (quick profile, a fresh run folder; the notebooks load the committed course
# models), then the library tests, notebook 02 retraining live (tests/test_retrain.py), every notebook
# run alone from the built wheel (tests/test_alone.py) and the browser tests; float32, as for make study.
test: $(STAMP)
	DYNLAB_QUICK=1 DYNLAB_CPU_BF16=0 DYNLAB_RUNS=$$(mktemp -d) MPLBACKEND=Agg $(PY) -m pytest notebooks tests \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900

# Browser tests that run notebooks (needs Chromium: see tests/browser/conftest.py); their screenshots
# replace the committed ones in assets/screens/.
screenshots: $(STAMP)
	rm -f assets/screens/*.png
	DYNLAB_SCREENS=$(CURDIR)/assets/screens DYNLAB_BROWSER_REQUIRED=1 $(PY) -m pytest tests/browser \
		-k test_run_all_cells -p no:cacheprovider

# The course as it runs, a static site in build/book: every notebook run alone from the built wheel in
# the quick profile (loading the course models), rendered to HTML with its outputs, and an index.
book: $(STAMP)
	DYNLAB_QUICK=1 DYNLAB_CPU_BF16=0 MPLBACKEND=Agg $(PY) tools/book.py --out build/book

lab: $(STAMP)
	DYNLAB_CPU_BF16=0 $(VENV)/bin/jupyter lab notebooks/

flops: $(CORE)
	$(VENV)/bin/dynlab flops

clean-venv:
	rm -rf $(VENV)
