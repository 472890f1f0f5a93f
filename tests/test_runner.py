"""The runner: parameter validation before anything runs, run folders, manifest, failures kept."""

from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from conftest import run_cli
from copystudy import runner

PARAMS_CELL = """seed = 0  # random seed
n = 3  # how many things
rate = 0.5  # a float
label = "a"  # a string
sizes = [1, 2]  # a list
fail = False  # raise in the second cell
data_dir = None  # an optional folder
ratio = 0.5  # d_train <= ratio x d_heldout (a comment with =)
"""

BODY = """from copystudy import report
import os
if fail:
    raise ValueError("asked to fail")
report.save_metrics({"n": n, "rate": rate, "sizes": sizes, "cwd_ok": os.path.basename(os.getcwd()) != ""})
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


def test_declared_parameters_have_types_defaults_and_help(project):
    params = runner.declared_parameters(project / "notebooks" / "01_toy.ipynb")
    assert params["n"].default == 3 and params["n"].type == "int"
    assert params["sizes"].default == [1, 2] and params["label"].help == "a string"
    assert params["ratio"].default == 0.5 and "ratio x d_heldout" in params["ratio"].help


def test_order_prefix_is_dropped_from_names(project):
    assert list(runner.notebooks(project)) == ["toy"]


def test_values_merge_defaults_file_and_sets(project):
    values, _ = runner.resolve_parameters("toy", project / "params" / "toy" / "other.yaml", ["label=b"], project)
    assert values["n"] == 5 and values["rate"] == 1.0 and isinstance(values["rate"], float)
    assert values["label"] == "b" and values["sizes"] == [1, 2]


@pytest.mark.parametrize("sets, message", [
    (["nn=3"], "no parameter 'nn'"),
    (["n=three"], "parameter 'n' must be int"),
    (["n=1.5"], "parameter 'n' must be int"),
    (["fail=1"], "parameter 'fail' must be bool"),
    (["sizes=3"], "parameter 'sizes' must be list"),
    (["novalue"], "KEY=VALUE"),
])
def test_bad_parameters_are_named_before_running(project, sets, message):
    with pytest.raises(runner.ParameterError, match=message) as info:
        runner.resolve_parameters("toy", None, sets, project)
    if "no parameter" in message:
        assert "valid parameters: seed, n, rate" in str(info.value)


def test_missing_params_file_and_unknown_notebook(project):
    with pytest.raises(runner.ParameterError, match="not found; sets for toy"):
        runner.resolve_parameters("toy", project / "nope.yaml", [], project)
    with pytest.raises(runner.ParameterError, match="valid names: toy"):
        runner.find_notebook("toys", project)


def test_path_parameters_become_absolute(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values, _ = runner.resolve_parameters("toy", None, ["data_dir=images"], project)
    assert values["data_dir"] == str(tmp_path / "images")


def test_run_writes_the_results_tree(project):
    proc = run_cli("run", "toy", "--quiet", cwd=project, env={"COPYSTUDY_ROOT": str(project)})
    run_dir = project / "results" / "toy" / "default"
    assert "done" in proc.stdout
    for f in ("executed.ipynb", "params.yaml", "manifest.json", "metrics.json", "figures/line.png",
              "figures/line.pdf", "tables/numbers.csv", "tables/numbers.md"):
        assert (run_dir / f).is_file(), f
    assert yaml.safe_load((run_dir / "params.yaml").read_text())["n"] == 4
    assert json.loads((run_dir / "metrics.json").read_text())["n"] == 4
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["seed"] == 0 and manifest["versions"]["torch"]
    assert set(manifest["inputs_sha256"]) == {"numbers"} and manifest["wall_seconds"] > 0
    assert "commit" in manifest["git"] and manifest["started"] <= manifest["finished"]
    # the same parameters rerun in place; other parameters never overwrite it
    run_cli("run", "toy", "--quiet", "--set", "n=7", cwd=project, env={"COPYSTUDY_ROOT": str(project)})
    assert json.loads((run_dir / "metrics.json").read_text())["n"] == 4
    others = [p.name for p in (project / "results" / "toy").iterdir()]
    assert len(others) == 2 and any(p.startswith("default-") for p in others)


def test_out_folder_with_other_parameters_is_refused(project, tmp_path):
    out = tmp_path / "run"
    env = {"COPYSTUDY_ROOT": str(project)}
    run_cli("run", "toy", "--quiet", "--out", str(out), cwd=project, env=env)
    proc = run_cli("run", "toy", "--quiet", "--out", str(out), "--set", "n=9", cwd=project, env=env, check=False)
    assert proc.returncode == 2 and "different parameters" in proc.stderr


def test_failing_cell_is_reported_and_partial_notebook_kept(project, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "toy", "--quiet", "--out", str(out), "--set", "fail=true", cwd=project,
                   env={"COPYSTUDY_ROOT": str(project)}, check=False)
    assert proc.returncode == 1
    assert "ValueError" in proc.stderr and "asked to fail" in proc.stderr and "cell" in proc.stderr
    failed = tmp_path / "run.failed"
    assert (failed / "executed.ipynb").is_file() and not out.exists()
    assert json.loads((failed / "manifest.json").read_text())["status"] == "failed"


def test_unknown_parameter_fails_before_running(project):
    proc = run_cli("run", "toy", "--set", "bogus=1", cwd=project, env={"COPYSTUDY_ROOT": str(project)},
                   check=False)
    assert proc.returncode == 2 and "bogus" in proc.stderr
    assert not (project / "results").exists()


def test_list_shows_parameters_and_sets(project):
    proc = run_cli("list", cwd=project, env={"COPYSTUDY_ROOT": str(project)})
    assert "toy" in proc.stdout and "sizes" in proc.stdout and "params/toy/other.yaml" in proc.stdout


def test_set_one_key_of_a_dict_parameter_and_local_model_paths(tmp_path, monkeypatch):
    from copystudy import runner

    values, _ = runner.resolve_parameters("lm_compression", sets=["model.n_embd=32"])
    assert values["model"] == {"family": "causal_lm", "n_layer": 2, "n_head": 2, "n_embd": 32, "context": 128}
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    values, _ = runner.resolve_parameters("lm_compression", sets=["model={family: causal_lm, name_or_path: my-model}"])
    assert values["model"]["name_or_path"] == str(tmp_path / "my-model")  # a local folder: made absolute
    values, _ = runner.resolve_parameters("lm_compression", sets=["model={family: causal_lm, name_or_path: gpt2}"])
    assert values["model"]["name_or_path"] == "gpt2"  # a hub id stays as it is
    with pytest.raises(runner.ParameterError, match="not a dict parameter"):
        runner.resolve_parameters("lm_compression", sets=["seed.x=1"])
