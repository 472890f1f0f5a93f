"""Shared fixtures: run a study notebook through the runner, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from copystudy.runner.params import declared_parameters

ROOT = Path(__file__).resolve().parents[1]


def locked_versions() -> dict[str, str]:
    """requirements.lock as {normalised name: pinned version}."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins
# every notebook of the study, discovered as the runner discovers them (notebooks/NN_<name>.ipynb)
NOTEBOOKS = sorted(p.stem.partition("_")[2] for p in (ROOT / "notebooks").glob("[0-9]*_*.ipynb"))


def one_line_error(proc) -> str:
    """The stderr of a refused command: exit 2, one line starting with 'error:', no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None, check: bool = True):
    """python -m copystudy ARGS in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "COPYSTUDY_PROGRESS": "0", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "copystudy", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"copystudy {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}")
    return proc


def _run_study_notebook(name: str, params: str, sets, out: Path, env: dict | None = None):
    """A study notebook through the runner into `out`; returns (out, metrics) once the run is checked."""
    extra = [a for s in sets for a in ("--set", s)]
    run_cli("run", name, "--params", str(ROOT / "params" / name / f"{params}.yaml"), "--out", str(out),
            "--quiet", *extra, env=env)
    for required in ("executed.ipynb", "params.yaml", "manifest.json", "metrics.json"):
        assert (out / required).is_file(), f"{name}: {required} missing"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["wall_seconds"] > 0
    return out, json.loads((out / "metrics.json").read_text())


@pytest.fixture
def run_notebook(tmp_path):
    """run_notebook(name, params="smoke", sets=()) -> (run folder, metrics dict): a run of the test's own."""

    def _run(name: str, params: str = "smoke", sets=()):
        return _run_study_notebook(name, params, sets, tmp_path / f"{name}-{params}")

    return _run


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """smoke_run(name, params="smoke", sets=()) -> (run folder, metrics dict), made once per session and
    shared by every test that examines the same run: read it, never write into it.

    A notebook with a `cache_dir` parameter gets a model cache of its own beside the run folder
    (`<run>/../cache`), empty when the run starts. Progress is on (COPYSTUDY_PROGRESS=1), as for a user:
    the executed notebook keeps its one line per loop."""
    made = {}

    def _run(name: str, params: str = "smoke", sets=()):
        key = (name, params, tuple(sets))
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{name}-{params}")
            sets = list(sets)
            declared = declared_parameters(ROOT / "notebooks" / next(
                p.name for p in (ROOT / "notebooks").glob(f"[0-9]*_{name}.ipynb")))
            if "cache_dir" in declared and not any(s.startswith("cache_dir=") for s in sets):
                sets.append(f"cache_dir={folder / 'cache'}")
            made[key] = _run_study_notebook(name, params, sets, folder / "run", env={"COPYSTUDY_PROGRESS": "1"})
        return made[key]

    return _run


# ---- a throwaway project with one toy notebook, for the runner's tests --------------------------
PARAMS_CELL = """seed = 0  # int >= 0: random seed
n = 3  # int >= 1: how many things
rate = 0.5  # float > 0: a float
label = "a"  # str: a string
sizes = [1, 2]  # list of int >= 1: a list
fail = False  # bool: raise in the second cell
data_dir = None  # image folder or None: an optional folder
ratio = 0.5  # float in (0, 1]: d_train <= ratio x d_heldout (a comment with =)
text_files = None  # text files (at least 2) or None: documents, one per file
"""

BODY = """from copystudy.common import report
import os, time
if fail:
    raise ValueError("asked to fail")
time.sleep(float(os.environ.get("TOY_SLEEP", 0)))  # the tests interrupt a run here
report.save_metrics({"n": n, "rate": rate, "sizes": sizes, "cwd_ok": os.path.basename(os.getcwd()) != ""})
report.save_timings({"body_seconds": 0.1, "omp_threads": os.environ.get("OMP_NUM_THREADS")})
report.record_input("numbers", bytes(range(n)))
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt, pandas as pd
fig, ax = plt.subplots(); ax.plot(range(n)); report.save_figure(fig, "line")
report.save_table(pd.DataFrame({"i": range(n)}), "numbers")
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throwaway project with one notebook 01_toy.ipynb and params/toy/{default,other}.yaml."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "params" / "toy").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "copystudy", "display_name": "copystudy", "language": "python"}
    cell = nbformat.v4.new_code_cell(PARAMS_CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Toy"), cell, nbformat.v4.new_code_cell(BODY)]
    nbformat.write(nb, root / "notebooks" / "01_toy.ipynb")
    (root / "params" / "toy" / "default.yaml").write_text("n: 4\n")
    (root / "params" / "toy" / "other.yaml").write_text("n: 5\nrate: 1\n")
    monkeypatch.setenv("COPYSTUDY_ROOT", str(root))
    return root
