# Two commands do everything on a fresh machine:  make study  and  make test.
# They create .venv with the pinned CPU torch and the package, and register the 'copystudy' kernel.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: study test lab install clean-venv

study: $(VENV)/.installed
	$(PY) -m copystudy run all --workers auto

test: $(VENV)/.installed
	$(PY) -m pytest

lab: $(VENV)/.installed
	$(PY) -m jupyterlab --notebook-dir=. notebooks/01_lm_compression.ipynb

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name copystudy --display-name copystudy
	touch $@

clean-venv:
	rm -rf $(VENV)
