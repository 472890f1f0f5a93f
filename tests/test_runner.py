"""The runner: parameter validation before anything runs, run folders, manifest, failures kept."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT, run_cli
from copystudy.runner import plan
from copystudy.runner.params import ParameterError, declared_parameters

def test_declared_parameters_have_specs_defaults_and_help(project):
    params = declared_parameters(project / "notebooks" / "01_toy.ipynb")
    assert params["n"].default == 3 and params["n"].type == "int >= 1" and params["n"].help == "how many things"
    assert params["sizes"].default == [1, 2] and params["label"].help == "a string"
    assert params["ratio"].default == 0.5 and "ratio x d_heldout" in params["ratio"].help


def test_order_prefix_is_dropped_from_names(project):
    assert list(plan.notebooks(project)) == ["toy"]


def test_values_merge_defaults_file_and_sets(project):
    values, _ = plan.resolve_parameters("toy", project / "params" / "toy" / "other.yaml", ["label=b"], project)
    assert values["n"] == 5 and values["rate"] == 1.0 and isinstance(values["rate"], float)
    assert values["label"] == "b" and values["sizes"] == [1, 2]


def test_exponent_floats_from_set_and_yaml(project):
    (project / "params" / "toy" / "exp.yaml").write_text("rate: 1e-3\nn: 1e2\n")
    values, _ = plan.resolve_parameters("toy", project / "params" / "toy" / "exp.yaml", [], project)
    assert values["rate"] == 0.001 and values["n"] == 100 and isinstance(values["n"], int)
    values, _ = plan.resolve_parameters("toy", None, ["rate=1e-3"], project)
    assert values["rate"] == 0.001


def test_a_bad_value_in_a_file_names_file_and_line(project):
    (project / "params" / "toy" / "bad.yaml").write_text("n: 4\nrate: -1\n")
    with pytest.raises(ParameterError, match=r"bad.yaml:2: parameter 'rate' must be float > 0"):
        plan.resolve_parameters("toy", project / "params" / "toy" / "bad.yaml", [], project)


@pytest.mark.parametrize("sets, message", [
    (["nn=3"], "no parameter 'nn'"),
    (["n=three"], "parameter 'n' must be int >= 1 \\(default 3\\), got str 'three'"),
    (["n=1.5"], "parameter 'n' must be int"),
    (["n=0"], "parameter 'n' must be int >= 1 \\(default 3\\), got 0"),
    (["n=-2"], "parameter 'n' must be int >= 1"),
    (["rate=0"], "parameter 'rate' must be float > 0"),
    (["rate=.nan"], "got nan, which is not finite"),
    (["rate=nan"], "got nan, which is not finite"),
    (["rate=-.inf"], "got -inf, which is not finite"),
    (["ratio=1.5"], "parameter 'ratio' must be float in \\(0, 1\\]"),
    (["sizes=[]"], "got an empty list"),
    (["sizes=[1, 0]"], "item 2: got 0"),
    (["data_dir=3"], "parameter 'data_dir' must be image folder or None"),
    (["fail=1"], "parameter 'fail' must be bool"),
    (["sizes=3"], "parameter 'sizes' must be list"),
    (["novalue"], "KEY=VALUE"),
    (["label=[1"], "cannot read '\\[1' as a value"),
])
def test_bad_parameters_are_named_before_running(project, sets, message):
    with pytest.raises(ParameterError, match=message) as info:
        plan.resolve_parameters("toy", None, sets, project)
    if "no parameter" in message:
        assert "valid parameters: seed, n, rate" in str(info.value)


def test_missing_params_file_and_unknown_notebook(project):
    with pytest.raises(ParameterError, match="not found; sets for toy"):
        plan.resolve_parameters("toy", project / "nope.yaml", [], project)
    with pytest.raises(ParameterError, match="valid names: toy"):
        plan.find_notebook("toys", project)


def test_path_parameters_become_absolute(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values, _ = plan.resolve_parameters("toy", None, ["data_dir=images"], project)
    assert values["data_dir"] == str(tmp_path / "images")


@pytest.mark.notebook
@pytest.mark.slow
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
    assert manifest["created_by"] == "copystudy" and manifest["timings"]["body_seconds"] == 0.1
    assert not (run_dir / ".copystudy-run").exists() and not (run_dir / "timings.json").exists()
    assert not list((project / "results" / "toy").glob("*.lock"))
    assert set(manifest["inputs_sha256"]) == {"numbers"} and manifest["wall_seconds"] > 0
    assert "commit" in manifest["git"] and manifest["started"] <= manifest["finished"]
    # no path of this machine: the manifest's and the executed notebook's are relative to the project
    assert manifest["params_file"] == "params/toy/default.yaml" and manifest["notebook"] == "notebooks/01_toy.ipynb"
    assert str(project) not in (run_dir / "manifest.json").read_text()
    papermill = json.loads((run_dir / "executed.ipynb").read_text())["metadata"]["papermill"]
    assert (papermill["input_path"], papermill["output_path"]) == ("notebooks/01_toy.ipynb", "executed.ipynb")
    # the files the run wrote, which a rerun may replace (and nothing else)
    assert manifest["files"] == sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    # the same parameters rerun in place; other parameters never overwrite it
    run_cli("run", "toy", "--quiet", "--set", "n=7", cwd=project, env={"COPYSTUDY_ROOT": str(project)})
    assert json.loads((run_dir / "metrics.json").read_text())["n"] == 4
    others = [p.name for p in (project / "results" / "toy").iterdir()]
    assert len(others) == 2 and any(p.startswith("default-") for p in others)


@pytest.mark.notebook
@pytest.mark.slow
def test_out_folder_with_other_parameters_is_refused(project, tmp_path):
    out = tmp_path / "run"
    env = {"COPYSTUDY_ROOT": str(project)}
    run_cli("run", "toy", "--quiet", "--out", str(out), cwd=project, env=env)
    proc = run_cli("run", "toy", "--quiet", "--out", str(out), "--set", "n=9", cwd=project, env=env, check=False)
    assert proc.returncode == 2 and "different parameters" in proc.stderr


@pytest.mark.notebook
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


def test_list_gives_one_line_per_parameter_whose_default_reads_back():
    """`copystudy list`: `name = default  # valid values: meaning`, one line per parameter, the default
    in YAML that reads back (as --set would) to the notebook's own default, dicts in full."""
    from copystudy.runner.params import yaml_value

    sections, current = {}, None
    for line in run_cli("list").stdout.splitlines():
        if line and not line.startswith(" "):
            current = sections.setdefault(line.split()[0], {})
        elif " = " in line and "  # " in line:
            name, rest = line.strip().split(" = ", 1)
            current[name] = rest
    for notebook, path in plan.notebooks(ROOT).items():
        declared = declared_parameters(path)
        assert list(sections[notebook]) == list(declared), notebook
        for p in declared.values():
            default_text, meaning = sections[notebook][p.name].split("  # ", 1)
            assert yaml_value(default_text) == p.default, (notebook, p.name, default_text)
            assert meaning.startswith(p.type + ": ")


def test_set_one_key_of_a_dict_parameter_and_local_model_paths(tmp_path, monkeypatch):
    values, _ = plan.resolve_parameters("lm_compression", sets=["model.n_embd=32"])
    assert values["model"] == {"family": "causal_lm", "n_layer": 2, "n_head": 2, "n_embd": 32, "context": 128}
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    values, _ = plan.resolve_parameters("lm_compression", sets=["model={family: causal_lm, name_or_path: my-model}"])
    assert values["model"]["name_or_path"] == str(tmp_path / "my-model")  # a local folder: made absolute
    values, _ = plan.resolve_parameters("lm_compression", sets=["model={family: causal_lm, name_or_path: gpt2}"])
    assert values["model"]["name_or_path"] == "gpt2"  # a hub id stays as it is
    with pytest.raises(ParameterError, match="not a dict parameter"):
        plan.resolve_parameters("lm_compression", sets=["seed.x=1"])


@pytest.mark.notebook
def test_the_kernel_runs_on_local_sockets_without_a_tcp_warning(project, tmp_path):
    proc = run_cli("run", "toy", "--quiet", "--out", str(tmp_path / "r"), cwd=project,
                   env={"COPYSTUDY_ROOT": str(project)})
    assert "TCP" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr


@pytest.mark.notebook
@pytest.mark.slow
def test_threads_reach_the_kernel_and_the_manifest(project, tmp_path):
    """--threads N reaches the kernel; by default it gets one thread whatever the environment says."""
    env = {"COPYSTUDY_ROOT": str(project), "OMP_NUM_THREADS": "4"}
    run_cli("run", "toy", "--quiet", "--threads", "2", "--out", str(tmp_path / "two"), cwd=project, env=env)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["timings"]["omp_threads"] == "2" and manifest["threads"]["OPENBLAS_NUM_THREADS"] == "2"
    assert manifest["executor"] == {"executor": "in-process"}
    run_cli("run", "toy", "--quiet", "--out", str(tmp_path / "default"), cwd=project, env=env)
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["timings"]["omp_threads"] == "1"
    proc = run_cli("run", "toy", "--threads", "0", cwd=project, env=env, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --threads must be a whole number >= 1, got 0"


@pytest.mark.notebook
@pytest.mark.slow
def test_the_notebook_keeps_one_line_per_loop_and_no_progress_bars(smoke_run):
    """With progress on and no terminal, the executed notebook gets one summary line per loop (what,
    how many, how long) and no bar, no tqdm warning (the shared smoke run has progress on)."""
    import re

    import nbformat

    out, _ = smoke_run("memorization")
    nb = nbformat.read(out / "executed.ipynb", as_version=4)
    lines = [ln for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"
             for ln in re.split(r"[\r\n]", o["text"]) if ln.strip()]
    assert any(re.fullmatch(r"train N=\d+[^:]*: \d+/\d+ in \d+ s", ln) for ln in lines), lines
    assert not [ln for ln in lines if "%|" in ln or "it/s" in ln or "Warning" in ln], lines
