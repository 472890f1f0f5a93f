# Two commands do everything on a fresh machine:  make study  and  make test.
# They create .venv with the pinned CPU torch and the package, and register the 'copystudy' kernel
# (its spec sets one torch/BLAS/OpenMP thread, as `copystudy run` does, so a notebook rerun by hand gives the same numbers).
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
	$(PY) -c 'from copystudy.runner.kernel import ensure_kernel; ensure_kernel()'
	touch $@

clean-venv:
	rm -rf $(VENV)
