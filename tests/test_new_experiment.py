"""The README's "Adding an experiment", followed step by step in a temporary project: a notebook with a
tagged parameters cell, its parameter sets, and a package `copystudy.experiments.<name>` in a folder of
its own on PYTHONPATH (nothing in lib/ or in the study's lists changes). Then the runner lists it,
checks it (its own rule included), runs it, and the site shows its headline number."""

from __future__ import annotations

import json
import os
import textwrap

import nbformat
import pytest

from conftest import one_line_error, run_cli

PARAMETERS = """seed = 0  # int >= 0: random seed of the draws
n = 50  # int >= 2: how many numbers are drawn
low = 0.0  # float: the smallest value a draw can take
high = 1.0  # float: the largest value a draw can take
"""

CELLS = [
    ("markdown", "# Uniform draws\n\nDoes the mean of n uniform draws on [low, high] land near (low + high) / 2?"),
    ("parameters", PARAMETERS),
    ("code", "from copystudy.common import report\nfrom copystudy.experiments.uniform import figures, steps, summary"),
    ("markdown", "The histogram shows the draws; the dashed line is their mean."),
    ("code", "draws = steps.draw(seed, n, low, high)\nmetrics = summary.summarize(draws, low, high)\n"
             "report.save_metrics(metrics)\nreport.save_figure(figures.histogram(draws), 'draws')"),
    ("code", "for line in summary.verdicts(metrics):\n    print(line)"),
]

PACKAGE = {
    "__init__.py": '''
        """Uniform draws: a minimal experiment (what the runner and the site need, without torch)."""

        HEADLINES = [("mean", "mean of the draws", ".3f")]


        def rules(v: dict) -> str | None:
            if v["low"] >= v["high"]:
                return f"low={v['low']} must be below high={v['high']}"
            return None
        ''',
    "steps.py": '''
        """The experiment: draw the numbers."""

        import numpy as np


        def draw(seed: int, n: int, low: float, high: float) -> np.ndarray:
            return np.random.default_rng(seed).uniform(low, high, n)
        ''',
    "summary.py": '''
        """metrics.json from the draws, and the sentences the notebook prints from metrics alone."""

        from copystudy.common import intervals


        def summarize(draws, low: float, high: float) -> dict:
            mean, lo, hi = intervals.mean_ci([float(x) for x in draws])
            return {"n": len(draws), "mean": mean, "mean_ci": [lo, hi], "midpoint": (low + high) / 2}


        def verdicts(m: dict) -> list[str]:
            inside = m["mean_ci"][0] <= m["midpoint"] <= m["mean_ci"][1]
            return [f"The mean of {m['n']} draws is {m['mean']:.3f}; its 95% interval "
                    f"{'holds' if inside else 'misses'} the midpoint {m['midpoint']:g}."]
        ''',
    "figures.py": '''
        """The histogram of the draws."""

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt


        def histogram(draws):
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.hist(draws, bins=10)
            ax.axvline(float(draws.mean()), linestyle="--")
            ax.set_xlabel("value")
            return fig
        ''',
}


def _write_experiment(root, extension):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "copystudy", "display_name": "copystudy", "language": "python"}
    for kind, source in CELLS:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    nbformat.write(nb, root / "notebooks" / "02_uniform.ipynb")
    (root / "params" / "uniform").mkdir(parents=True)
    (root / "params" / "uniform" / "default.yaml").write_text("n: 50\n")
    (root / "params" / "uniform" / "smoke.yaml").write_text("n: 5\n")
    package = extension / "copystudy" / "experiments" / "uniform"  # no __init__.py above <name>/
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())


@pytest.mark.notebook
@pytest.mark.slow
def test_an_experiment_added_as_the_readme_says_runs_checks_lists_and_shows(project, tmp_path):
    extension = tmp_path / "my_experiments"
    _write_experiment(project, extension)
    env = {"COPYSTUDY_ROOT": str(project),
           "PYTHONPATH": os.pathsep.join(p for p in (str(extension), os.environ.get("PYTHONPATH")) if p)}

    listed = run_cli("list", cwd=project, env=env).stdout
    assert "uniform  (notebooks/02_uniform.ipynb)" in listed
    assert "n = 50  # int >= 2: how many numbers are drawn" in listed and "params/uniform/smoke.yaml" in listed

    assert "uniform: ok (4 parameters" in run_cli("run", "uniform", "--check", cwd=project, env=env).stdout
    refused = run_cli("run", "uniform", "--check", "--set", "low=2", cwd=project, env=env, check=False)
    assert one_line_error(refused) == "error: uniform: low=2.0 must be below high=1.0"  # the package's own rule

    run_cli("run", "uniform", "--quiet", cwd=project, env=env)
    run = project / "results" / "uniform" / "default"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 50 and metrics["midpoint"] == 0.5
    assert (run / "figures" / "draws.png").is_file()
    executed = nbformat.read(run / "executed.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert f"The mean of 50 draws is {metrics['mean']:.3f}" in printed

    site = tmp_path / "site"
    run_cli("site", "--out", str(site), cwd=project, env=env)
    index = (site / "index.html").read_text()
    assert "mean of the draws" in index and f"{metrics['mean']:.3f}" in index
    assert (site / "uniform.html").is_file()
