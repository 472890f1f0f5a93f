# Two commands do everything on a fresh machine:  make study  and  make test.
# They create .venv with the CPU torch, then exactly the versions in requirements.lock (those the canonical
# runs used), and the package, and register the 'copystudy' kernel (its spec sets one torch/BLAS/OpenMP
# thread, as `copystudy run` does, so a notebook rerun by hand gives the same numbers).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
LOCK_TOOLS := .lock-tools

.PHONY: study test test-fast lab install lock clean-venv

study: $(VENV)/.installed
	$(PY) -m copystudy run all --workers auto

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# everything but the tests that execute a notebook, take over 10 s, or check the committed runs (2-3 min on 2 cores)
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not notebook and not slow and not provenance"

lab: $(VENV)/.installed
	$(PY) -m jupyterlab --notebook-dir=. notebooks/01_lm_compression.ipynb

install: $(VENV)/.installed

# torch first, by its exact pin (the CPU wheel), then the lock without dependencies, so nothing pulls CUDA
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	$(PY) -c 'from copystudy.runner.kernel import ensure_kernel; ensure_kernel()'
	touch $@

# Update the lock (pip-tools, in a venv of its own): after changing the dependencies in pyproject.toml,
# `make lock` re-resolves keeping every pin that still fits; `make lock UPGRADE=1` takes the newest releases
# the ranges allow. Then `make` installs it, and the canonical runs are redone with it.
lock:
	test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet pip-tools==7.6.2; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet --extra dev --strip-extras --no-emit-find-links \
	    --no-emit-index-url $(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' $(LOCK)

clean-venv:
	rm -rf $(VENV)
