"""Where the study's independent tasks run: one after another in this process, or on a Dask cluster.

The embarrassingly parallel parts (a coalition's fine-tune and likelihoods, a cell of the model x data
sweep, a rung of the memorisation ladder, an LM size of the canary test, a prefix model of the
prequential code, a with/without model of the memorised bits, an LM of the text risk map) are handed
to `map_tasks`.
Without a scheduler they run here, in order; when the runner was given `--workers N` (a local
`dask.distributed.LocalCluster` of N single-threaded workers) or `--scheduler ADDRESS` (a cluster the
user runs, e.g. with dask-jobqueue on SLURM), it passes the scheduler's address to the kernel in
$COPYSTUDY_SCHEDULER and the tasks go there.

Every task runs with one torch/BLAS thread wherever it runs, so its numbers do not depend on where it
ran or on how many workers there were: small models gain little from a second thread and lose several
times over when the thread spins against another busy process. Trained models go through the
content-addressed model cache, a folder every worker sees, so a repeated or crashed task is a cache
hit. Without a scheduler nothing of Dask is imported.

When $COPYSTUDY_TASK_LOG names a file (the runner sets it to the run's tasks.csv), every task appends
one line to it: its stage (one `map_tasks`/`submit_tasks` call), description, worker, start and end
(`benchmarks/task_profile.py` turns these into work, span and predicted wall times on more workers).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable

SCHEDULER_ENV = "COPYSTUDY_SCHEDULER"
TASK_LOG_ENV = "COPYSTUDY_TASK_LOG"
TASK_LOG_FIELDS = ("stage", "desc", "index", "worker", "start", "end")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")  # what a new process reads for its thread counts
_clients: dict = {}


def scheduler_address() -> str | None:
    """The Dask scheduler the tasks go to ($COPYSTUDY_SCHEDULER), or None: run them here."""
    return os.environ.get(SCHEDULER_ENV) or None


@contextmanager
def single_thread():
    """One torch thread and one BLAS/OpenMP thread inside the block (restored after it)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def run_task(fn: Callable, item):
    """fn(item) with one thread: the same arithmetic in this process and on any worker."""
    with single_thread():
        return fn(item)


def _worker_name() -> str:
    """The Dask worker running this task, or 'kernel' when it runs in the notebook's own process."""
    if "distributed" not in sys.modules:  # never import Dask for a task that runs here
        return "kernel"
    from distributed import get_worker

    try:
        return str(get_worker().name)
    except ValueError:
        return "kernel"


def timed_task(fn: Callable, item):
    """(fn(item), (worker, start, end)): run_task with the wall-clock times the task log records."""
    start = time.time()
    out = run_task(fn, item)
    return out, (_worker_name(), start, time.time())


def log_tasks(stage: str, desc: str, times: list) -> None:
    """Append one row per task to $COPYSTUDY_TASK_LOG (nothing when it is unset)."""
    path = os.environ.get(TASK_LOG_ENV)
    if not path or not times:
        return
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(TASK_LOG_FIELDS)
        for index, (worker, start, end) in enumerate(times):
            writer.writerow([stage, desc, index, worker, f"{start:.3f}", f"{end:.3f}"])


def client(address: str):
    """A Dask client of the scheduler at `address` (one per address and process)."""
    if address not in _clients:
        from distributed import Client

        _clients[address] = Client(address, set_as_default=False, timeout="10s")
    return _clients[address]


def _gpu_resources(c) -> dict | None:
    """{"GPU": 1} when the cluster's workers declare GPU resources (each task then takes one GPU)."""
    workers = c.scheduler_info(n_workers=-1).get("workers", {}).values()
    return {"GPU": 1} if any(w.get("resources", {}).get("GPU") for w in workers) else None


def map_tasks(fn: Callable, items: Iterable, desc: str = "tasks", progress_bar: bool = True,
              cost: Callable | None = None) -> list:
    """[fn(item) for item in items], each item a task on the Dask cluster if there is one, else run
    here in order; results in the order of `items` either way. fn and the items must pickle (Dask uses
    cloudpickle, so closures and lambdas do).

    cost(item): a relative estimate of a task's work; on a cluster the costliest tasks start first,
    so that one long task does not run alone at the end while the other workers wait."""
    return submit_tasks(fn, items, desc, progress_bar, cost).result()


class Pending:
    """Tasks handed to the cluster (or, without one, still to run here): `result()` waits for them and
    returns their results in item order."""

    def __init__(self, fn, items, desc, progress_bar, futures=None, client=None):
        self.fn, self.items, self.desc, self.progress_bar = fn, items, desc, progress_bar
        self.futures, self.client = futures, client
        self.stage = os.urandom(4).hex()

    def result(self) -> list:
        from copystudy.models.training import progress

        bar = not self.progress_bar or None
        if self.futures is None:
            done = [timed_task(self.fn, item) for item in progress(self.items, desc=self.desc, disable=bar)]
        else:
            from distributed import as_completed

            for _ in progress(as_completed(self.futures, loop=self.client.loop), total=len(self.futures),
                              desc=f"{self.desc} (dask)", disable=bar):
                pass
            done = self.client.gather(self.futures)
        log_tasks(self.stage, self.desc, [times for _, times in done])
        return [out for out, _ in done]


def submit_tasks(fn: Callable, items: Iterable, desc: str = "tasks", progress_bar: bool = True,
                 cost: Callable | None = None, background: bool = False) -> Pending:
    """Hand [fn(item) for item in items] to the cluster now and return at once; `.result()` collects
    them. Without a cluster they run at `.result()`, here, in order.

    background=True: the tasks yield to every task submitted without it, so a long batch (the model x
    data sweep) fills the workers that would otherwise wait for the last task of a short batch."""
    items = list(items)
    address = scheduler_address()
    if address is None:
        return Pending(fn, items, desc, progress_bar)
    c = client(address)
    resources, pending = _gpu_resources(c), Pending(fn, items, desc, progress_bar, client=c)
    order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
    base = -10 ** 6 if background else 0  # Dask runs the highest priority first among ready tasks
    submitted = {i: c.submit(timed_task, fn, items[i], pure=False, resources=resources,
                             key=f"{desc}-{i}-{pending.stage}", priority=base + len(items) - r)
                 for r, i in enumerate(order)}  # earlier: higher
    pending.futures = [submitted[i] for i in range(len(items))]
    return pending


def describe() -> dict:
    """The executor, for the run's manifest: in-process, or the Dask scheduler and its worker count."""
    address = scheduler_address()
    if address is None:
        return {"executor": "in-process"}
    workers = client(address).scheduler_info(n_workers=-1).get("workers", {})
    return {"executor": "dask", "scheduler": address, "workers": len(workers),
            "threads_per_worker": sorted({w.get("nthreads") for w in workers.values()})}


class ExecutorError(ValueError):
    """--workers or --scheduler cannot be used (one line for the user)."""


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_processes() -> int:
    """How many worker processes a step may spawn here: one per core, or 1 inside a worker process
    (a Dask worker or a process pool's), which may not have children of its own."""
    import multiprocessing

    return 1 if multiprocessing.current_process().daemon else usable_cores()


def local_cluster(workers: int):
    """A LocalCluster of `workers` single-threaded worker processes that train at full speed.

    Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker, which turns off glibc's adaptive
    mmap threshold: each of torch's larger tensors is then mapped and unmapped afresh, and a training
    step took 1.7x (byte LM) to 2.7x (UNet) as long. It is left out here. The nanny also writes its
    variables into this process's environment, where the kernel would inherit them: they are put back.
    Every worker gets one OpenMP/BLAS thread whatever this process's environment says.
    The workers import torch and the models while the kernel starts, not at their first task."""
    import logging

    import dask
    from distributed import LocalCluster

    saved = dict(os.environ)
    # the nanny takes these from this process's environment before its config
    os.environ.update({k: "1" for k in THREAD_VARIABLES})
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                silence_logs=logging.ERROR, preload=["copystudy.models"])
    finally:
        os.environ.clear()
        os.environ.update(saved)


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why no Dask scheduler answers at `address`, or None: a TCP connection, then Dask's handshake,
    each given `timeout` seconds (something else listening on the port does not pass)."""
    import socket

    scheme, sep, rest = address.partition("://")
    scheme, rest = (scheme, rest) if sep else ("tcp", address)
    if scheme in ("tcp", "tls"):
        host, _, port = rest.split("/")[0].rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                pass
        except ValueError:
            return f"expected {scheme}://HOST:PORT"
        except OSError as exc:
            return exc.strerror or str(exc) or type(exc).__name__
    return _identity_problem(address, timeout)


def _identity_problem(address: str, timeout: float) -> str | None:
    """Ask the scheduler at `address` who it is (Dask's `identity` message), within `timeout` seconds."""
    import asyncio

    from distributed.comm import connect

    async def ask():
        comm = await connect(address, timeout=timeout)
        try:
            await asyncio.wait_for(comm.write({"op": "identity"}), timeout)
            return await asyncio.wait_for(comm.read(), timeout)
        finally:
            comm.abort()

    try:
        reply = asyncio.run(ask())
    except Exception as exc:  # a timeout, a refused connection, or bytes that are not Dask's
        return f"something answers, but not as a Dask scheduler ({type(exc).__name__})"
    return None if isinstance(reply, dict) and reply.get("type") == "Scheduler" else "something answers, but not as a Dask scheduler"


def check_options(workers: int | None, scheduler: str | None) -> None:
    """ExecutorError (one line) unless the options name at most one executor and a worker count >= 1."""
    if workers is not None and scheduler is not None:
        raise ExecutorError("give --workers N (a local Dask cluster) or --scheduler ADDRESS (yours), not both")
    if workers is not None and workers < 1:
        raise ExecutorError(f"--workers must be a whole number >= 1, got {workers}")


@contextmanager
def executor(workers: int | None = None, scheduler: str | None = None):
    """The executor of one run, for a kernel started inside the block: a LocalCluster of `workers`
    single-threaded worker processes, the cluster at `scheduler`, or (neither) the scheduler already
    in $COPYSTUDY_SCHEDULER, or none. Sets $COPYSTUDY_SCHEDULER for the kernel and yields the
    manifest's description of the executor."""
    check_options(workers, scheduler)
    saved = os.environ.get(SCHEDULER_ENV)
    cluster = None
    try:
        if workers is not None:
            cluster = local_cluster(workers)
            os.environ[SCHEDULER_ENV] = cluster.scheduler_address
            info = {"executor": "dask LocalCluster", "workers": workers, "threads_per_worker": 1}
        elif scheduler is not None or saved:
            address = scheduler or saved
            os.environ[SCHEDULER_ENV] = address
            try:
                info = describe()
            except OSError as exc:
                raise ExecutorError(f"--scheduler {address}: no Dask scheduler answers there ({exc})") from None
        else:
            info = {"executor": "in-process"}
        yield info
    finally:
        for c in _clients.values():
            c.close()
        _clients.clear()
        if cluster is not None:
            cluster.close()
        os.environ.pop(SCHEDULER_ENV, None) if saved is None else os.environ.__setitem__(SCHEDULER_ENV, saved)
