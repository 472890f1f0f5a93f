"""One source of truth, and committed results that are what the code computes.

- Each notebook's parameter cell equals its params/<name>/default.yaml, so Run All in JupyterLab is the
  canonical run.
- Each committed canonical run results/<name>/default/ was made by the runner from this very notebook
  (the same cells, apart from papermill's injected parameters and the outputs), with the default
  parameters, from a clean tree, in the locked environment. An executed notebook edited by hand, a
  run made before the notebook or default.yaml changed, or one from a dirty tree fails here: rerun it
  (`make study`, or `copystudy run NAME`) instead of editing it.
"""

from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from conftest import NOTEBOOKS, ROOT, locked_versions
from copystudy.runner import plan
from copystudy.runner.params import declared_parameters, read_params_file


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_parameter_cell_equals_default_yaml(name):
    declared = declared_parameters(plan.find_notebook(name, ROOT))
    loaded, lines = read_params_file(ROOT / "params" / name / "default.yaml")
    unknown = sorted(set(loaded) - set(declared))
    assert not unknown, f"default.yaml sets parameters the notebook does not declare: {unknown}"
    differ = [f"{key} (default.yaml line {lines.get(key)}): cell {declared[key].default!r}, default.yaml {value!r}"
              for key, value in loaded.items()
              if declared[key].spec.check(value) != declared[key].spec.check(declared[key].default)]
    assert not differ, f"{name}: the notebook's parameter cell and default.yaml differ: " + "; ".join(differ)


def _cells(nb) -> list[tuple[str, str]]:
    """(type, source) of every cell but papermill's injected parameters: what a run executed."""
    return [(c.cell_type, c.source) for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]


@pytest.mark.provenance
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_canonical_run_is_what_the_code_makes(name):
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    run = ROOT / "results" / name / "default"
    assert (run / "manifest.json").is_file(), f"{name} has no committed canonical run in {run}"
    problems = []
    executed = nbformat.read(run / "executed.ipynb", as_version=4)
    notebook = nbformat.read(plan.find_notebook(name, ROOT), as_version=4)
    if _cells(executed) != _cells(notebook):
        first = next((i for i, (a, b) in enumerate(zip(_cells(executed), _cells(notebook))) if a != b),
                     min(len(_cells(executed)), len(_cells(notebook))))
        problems.append(f"executed.ipynb's cells differ from the notebook's (first at cell {first})")
    defaults, _ = plan.resolve_parameters(name, None, [], ROOT)
    used = yaml.safe_load((run / "params.yaml").read_text())
    if used != defaults:
        keys = sorted(k for k in set(used) | set(defaults) if used.get(k) != defaults.get(k))
        problems.append(f"params.yaml is not the default set (differs in {', '.join(keys)})")
    manifest = json.loads((run / "manifest.json").read_text())
    if manifest.get("status") != "ok" or manifest.get("overrides"):
        problems.append(f"the run's status is {manifest.get('status')!r} with overrides {manifest.get('overrides')}")
    if manifest.get("git", {}).get("dirty") is not False:
        problems.append(f"the tree was not clean (git: {manifest.get('git')})")
    pins = locked_versions()
    for package, version in manifest.get("versions", {}).items():
        locked = pins.get(canonicalize_name(package))
        if locked is not None and Version(Version(version).public) != Version(locked):
            problems.append(f"{package} {version}, the lock has {locked}")
    assert not problems, f"results/{name}/default: " + "; ".join(problems) + " (rerun it, do not edit it)"
