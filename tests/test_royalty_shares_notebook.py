"""Smoke run of notebooks/05_royalty_shares.ipynb through the runner."""

import json

import nbformat
import numpy as np
import pytest

from conftest import ROOT


def test_notebook_is_clean_and_parameterised():
    nb = nbformat.read(ROOT / "notebooks" / "05_royalty_shares.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "copystudy"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "seed = 0" in tagged[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_smoke_run(run_notebook, tmp_path):
    out, metrics = run_notebook("royalty_shares", sets=[f"cache_dir={tmp_path / 'cache'}"])
    for name in ("typefaces", "digits"):
        # the headline numbers are what the share matrix says: who is paid most, and the prompted owner's share
        matrix = metrics[f"{name}_share_matrix"]
        tops = [row[p] > 0 and row[p] > max(v for o, v in row.items() if o != p) for p, row in matrix.items()]
        assert metrics[f"{name}_prompted_owner_top_share_rate"] == pytest.approx(np.mean(tops))
        assert metrics[f"{name}_mean_prompted_share"] == pytest.approx(np.mean([row[p] for p, row in matrix.items()]))
        assert len(matrix) == metrics[f"{name}_n_owners"] == 3
        for row in matrix.values():
            total = sum(row.values())
            assert abs(total - 1.0) < 1e-9 or total == 0.0  # clipped and normalised (or nobody paid)
        # common random numbers: a paired difference is less noisy than two independent utilities
        assert metrics[f"{name}_median_se_full_minus_base_bits"] < metrics[f"{name}_median_se_if_independent_bits"]
        assert (out / "figures" / f"shares_{name}.png").is_file()
    for table in ("shares", "summary", "shell_companies", "estimators", "utilities", "timings"):
        assert (out / "tables" / f"{table}.csv").is_file() and (out / "tables" / f"{table}.md").is_file()
    assert (out / "figures" / "estimators.png").is_file() and (out / "figures" / "shell_companies.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    timings = manifest["timings"]  # how the run went, not what it found: kept out of metrics.json
    # the shell-company game reuses the coalitions that hold both halves or neither: 2 * 2**2 new fine-tunes
    assert timings["shell_companies_finetunes_trained"] == 8
    # 2**3 coalitions, the empty one included (fine-tuned on public data alone)
    assert timings["digits_finetunes_trained"] == 8 and timings["typefaces_finetunes_trained"] == 8
    assert timings["total_seconds"] > 0 and not any("seconds" in key for key in metrics)
