"""Two smoke runs of a notebook with the same parameters write byte-identical metrics.json.

metrics.json holds results only; wall-clock times and cache hits go to the manifest's `timings`.
royalty_shares' second run takes every coalition model from the cache the first one filled, so this
also shows that a cached model gives the numbers a freshly trained one gave.
"""

from __future__ import annotations

import json

import pytest

from conftest import NOTEBOOKS, ROOT, run_cli


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_two_smoke_runs_write_identical_metrics(name, tmp_path):
    sets = ["--set", f"cache_dir={tmp_path / 'cache'}"] if name == "royalty_shares" else []
    runs = []
    for label in ("first", "second"):
        out = tmp_path / label
        run_cli("run", name, "--params", str(ROOT / "params" / name / "smoke.yaml"), "--out", str(out), "--quiet",
                *sets)
        runs.append(out)
    first, second = ((out / "metrics.json").read_bytes() for out in runs)
    assert first == second
    assert not any("seconds" in key for key in json.loads(first))
