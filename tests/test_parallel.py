"""Parallel tasks: the same numbers wherever they run, and the runner's executor options.

A task runs with one thread in this process or on a Dask worker, so a run's numbers do not depend on
the number of workers; Dask is imported only when a scheduler is given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import NOTEBOOKS, ROOT, run_cli
from copystudy.common import parallel


def test_in_process_tasks_keep_order_and_import_no_dask(monkeypatch):
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)
    assert parallel.map_tasks(lambda x: x * x, [3, 1, 2], progress_bar=False) == [9, 1, 4]
    code = ("import sys; from copystudy.common import parallel; parallel.map_tasks(abs, [-1], progress_bar=False); "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != parallel.SCHEDULER_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_a_task_runs_single_threaded():
    import torch

    torch.set_num_threads(2)
    assert parallel.run_task(lambda _: torch.get_num_threads(), None) == 1
    assert torch.get_num_threads() == 2


def test_local_cluster_gives_results_in_order_and_leaves_malloc_alone(monkeypatch):
    """Results come back in order; the workers do not get Dask's MALLOC_TRIM_THRESHOLD_ (which made a
    training step 1.7-2.7x slower), and the nanny's variables do not leak into this process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    def where(x):
        import os
        return x, os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")

    with parallel.executor(workers=2) as info:
        assert info == {"executor": "dask LocalCluster", "workers": 2, "threads_per_worker": 1}
        assert parallel.map_tasks(where, list(range(6)), progress_bar=False) == [(x, None, "1") for x in range(6)]
        assert "MALLOC_TRIM_THRESHOLD_" not in os.environ and os.environ["OMP_NUM_THREADS"] == "3"
    assert parallel.scheduler_address() is None


def test_costliest_tasks_start_first_on_a_cluster():
    """With a cost, one worker takes the tasks costliest first; results still come in item order."""
    def started(x):
        import time
        return x, time.monotonic()

    with parallel.executor(workers=1):
        out = parallel.map_tasks(started, [1, 5, 3, 4, 2], progress_bar=False, cost=lambda x: x)
    assert [x for x, _ in out] == [1, 5, 3, 4, 2]
    assert [x for x, _ in sorted(out, key=lambda r: r[1])] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_smoke_numbers_equal_with_two_workers(name, tmp_path):
    """Every number of a smoke run is the same in-process and on 2 Dask workers (coalition models, sweep
    cells, ladder rungs, canary LMs, prefix models, memorisation models, the risk map's LMs are tasks),
    each run training its models afresh (royalty_shares: its own empty model cache)."""
    runs = {}
    for label, extra in (("in-process", []), ("workers", ["--workers", "2"])):
        out = tmp_path / label
        cache = ["--set", f"cache_dir={tmp_path / ('cache-' + label)}"] if name == "royalty_shares" else []
        run_cli("run", name, "--params", str(ROOT / "params" / name / "smoke.yaml"), "--out", str(out), "--quiet",
                *cache, *extra)
        runs[label] = out
    manifest = json.loads((runs["workers"] / "manifest.json").read_text())
    assert manifest["executor"] == {"executor": "dask LocalCluster", "workers": 2, "threads_per_worker": 1}
    assert json.loads((runs["in-process"] / "manifest.json").read_text())["executor"] == {"executor": "in-process"}
    first, second = ((runs[k] / "metrics.json").read_bytes() for k in ("in-process", "workers"))
    assert first == second
    assert len(json.loads(first)) > 10


def test_a_cluster_of_your_own_with_gpu_resources(tmp_path):
    """--scheduler: the README's recipe (a scheduler, workers without a nanny declaring a GPU resource,
    here on the CPU) runs the royalty smoke set to the numbers of the in-process run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COPYSTUDY_PROGRESS": "0"}
    bin_dir = os.path.dirname(sys.executable)
    procs = [subprocess.Popen([os.path.join(bin_dir, "dask"), "scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(tmp_path / "scheduler.json")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if (tmp_path / "scheduler.json").exists():
                break
            time.sleep(0.1)
        address = json.loads((tmp_path / "scheduler.json").read_text())["address"]
        procs += [subprocess.Popen([os.path.join(bin_dir, "dask"), "worker", address, "--no-nanny", "--nthreads", "1",
                                    "--resources", "GPU=1", "--no-dashboard"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=120)
        runs = {}
        for label, extra in (("in-process", []), ("cluster", ["--scheduler", address])):
            out = tmp_path / label
            run_cli("run", "royalty_shares", "--params", str(ROOT / "params" / "royalty_shares" / "smoke.yaml"),
                    "--out", str(out), "--quiet", "--set", f"cache_dir={tmp_path / ('cache-' + label)}", *extra)
            runs[label] = out
        executor = json.loads((runs["cluster"] / "manifest.json").read_text())["executor"]
        assert executor["executor"] == "dask" and executor["scheduler"] == address and executor["workers"] == 2
        assert (runs["in-process"] / "metrics.json").read_bytes() == (runs["cluster"] / "metrics.json").read_bytes()
    finally:
        for p in procs:
            p.terminate()
            p.wait()


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "error: --workers must be a whole number >= 1, got 0"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
     "error: give --workers N (a local Dask cluster) or --scheduler ADDRESS (yours), not both"),
])
def test_bad_executor_options_are_one_line(project, args, message):
    proc = run_cli("run", "toy", "--quiet", *args, cwd=project, env={"COPYSTUDY_ROOT": str(project)}, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == message


def test_a_scheduler_that_does_not_answer_is_one_line(project, tmp_path):
    proc = run_cli("run", "toy", "--quiet", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "r"),
                   cwd=project, env={"COPYSTUDY_ROOT": str(project)}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answers there")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.running").exists()


def test_background_tasks_yield_to_later_foreground_tasks():
    """A background batch submitted first: a foreground batch submitted after it starts before the
    background tasks still waiting, and both come back in item order."""
    import time

    with parallel.executor(workers=1) as _:
        def started(x):
            time.sleep(0.3)
            return x, time.time()

        background = parallel.submit_tasks(started, [10, 11, 12, 13], progress_bar=False, background=True)
        time.sleep(0.1)  # the one worker is busy with the first background task
        fore = parallel.map_tasks(started, [1, 2], progress_bar=False)
        back = background.result()
    assert [x for x, _ in fore] == [1, 2] and [x for x, _ in back] == [10, 11, 12, 13]
    assert max(t for _, t in fore) < sorted(t for _, t in back)[2]  # at most the first two background tasks ran first
