"""Run All in JupyterLab is the canonical run: a notebook's parameter cell equals its default.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from copystudy.runner.params import declared_parameters, read_params_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["lm_compression", "description_length"])
def test_parameter_cell_defaults_equal_default_yaml(name):
    notebook = next((ROOT / "notebooks").glob(f"[0-9]*_{name}.ipynb"))
    declared = {k: p.default for k, p in declared_parameters(notebook).items()}
    values, _ = read_params_file(ROOT / "params" / name / "default.yaml")
    assert set(values) <= set(declared), set(values) - set(declared)
    differ = {k: (declared[k], v) for k, v in values.items() if declared[k] != v}
    assert not differ, differ
    missing = set(declared) - set(values)
    assert not missing, f"default.yaml does not set {sorted(missing)}"
