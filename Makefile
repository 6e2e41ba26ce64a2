# Set-up is automatic: every target first makes .venv with pinned PyTorch and dynlab (editable).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: install study test lab flops clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_PIN)
	$(PY) -m pip install -e ".[lab,test]" $(TORCH_PIN)
	touch $(STAMP)

install: $(STAMP)

study: $(STAMP)
	$(VENV)/bin/dynlab flops

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

flops: $(STAMP)
	$(VENV)/bin/dynlab flops

clean-venv:
	rm -rf $(VENV)
