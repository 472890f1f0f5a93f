"""Two smoke runs of a notebook with the same parameters write byte-identical metrics.json.

metrics.json holds results only; wall-clock times and cache hits go to the manifest's `timings`.
The first run is the session's shared smoke run (made with progress on; the second has it off, so
this also shows that progress output changes no number). royalty_shares' second run takes every
coalition model from the cache the first one filled, so this also shows that a cached model gives
the numbers a freshly trained one gave.
"""

from __future__ import annotations

import json

import pytest

from conftest import NOTEBOOKS, ROOT, run_cli


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_two_smoke_runs_write_identical_metrics(name, smoke_run, tmp_path):
    shared, _ = smoke_run(name)
    cache = shared.parent / "cache"  # the shared run's model cache, when the notebook has one
    sets = ["--set", f"cache_dir={cache}"] if cache.is_dir() else []
    second = tmp_path / "second"
    run_cli("run", name, "--params", str(ROOT / "params" / name / "smoke.yaml"), "--out", str(second), "--quiet",
            *sets)
    first, second = ((out / "metrics.json").read_bytes() for out in (shared, second))
    assert first == second
    assert not any("seconds" in key for key in json.loads(first))
