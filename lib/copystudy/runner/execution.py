"""Run a notebook with papermill into its own results folder, with a manifest.

A run of notebook NAME with parameter set SET goes to results/NAME/SET/ (SET-<hash> with --set, or
--out). Everything that can be checked is checked first (`copystudy.runner.plan.prepare`). The run
then holds a lock on its folder, executes in SET.running/, and is moved into place only when it
succeeds, so a failed, interrupted or killed run never destroys the last good one; a failed run is
kept as SET.failed/ with its partial notebook and a manifest naming the cell that was running. The
manifest lists the files the run wrote (`files`); when it replaces an earlier run, whatever that run
did not write is carried into the new folder (`kept`; see `copystudy.runner.ownership`). Its paths
are relative to the project, as are papermill's in the executed notebook.

What a notebook reports besides its results reaches the manifest through two files it writes into
its run folder with `copystudy.common.report`: `inputs.json` (hashes of its input data, `record_input`) and
`timings.json` (wall-clock seconds and cache hits, `save_timings`); the runner moves both into
manifest.json when the notebook ends.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

from copystudy import PROGRESS_TO
from copystudy.common import parallel
from copystudy.common.parallel import THREAD_VARIABLES
from copystudy.runner import ownership, runfolder
from copystudy.runner.kernel import ensure_kernel, kernel_threads, local_kernel_manager
from copystudy.runner.params import ParameterError
from copystudy.runner.plan import Execution, Plan, prepare, project_root, relative_to_project

TASK_LOG = "tasks.csv"  # in the run folder: one row per parallel task (copystudy.common.parallel)
VERSIONED_PACKAGES = ("torch", "numpy", "transformers", "diffusers", "peft", "safetensors", "constriction",
                      "shapiq", "papermill", "nbclient", "ipykernel", "pandas", "matplotlib", "seaborn",
                      "scikit-learn", "zstandard", "brotli", "pyppmd")


class RunFailed(RuntimeError):
    """A notebook cell raised, or the run was interrupted; the partial executed notebook is kept."""


# ---- manifest ------------------------------------------------------------------------------------
def git_state(root: Path) -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD")
    # dirty: tracked code, notebooks or params differ from the commit (results/ are outputs, not inputs)
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": commit or None, "dirty": bool(changed) if commit else None}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


# ---- running ------------------------------------------------------------------------------------
def running_cell(executed: Path) -> dict:
    """The cell a partial executed notebook was in when it stopped: index, execution count and source.

    papermill saves the notebook when a cell starts, and marks it "completed" as soon as its code is
    sent to the kernel, so the running cell is the last one with a start time (or the failed one)."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # missing, or cut off mid-write by a kill
        return {}
    started = [(i, c) for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    failed = [(i, c) for i, c in started if c.metadata.papermill.get("status") == "failed"]
    if not (failed or started):
        return {}
    index, cell = (failed or started)[-1]
    return {"cell_index": index, "exec_count": cell.get("execution_count"), "source": cell.source}


class _CheckedParameters(logging.Filter):
    """Drop papermill's warnings about parameters: the runner has checked them all against the notebook,
    and papermill's own reader of the parameters cell cannot read comments holding '=' or '>'."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Unable to parse line", "Passed unknown parameter"))


def _quiet_papermill_parameter_warnings() -> None:
    for name in ("papermill", "papermill.translators"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _CheckedParameters) for f in logger.filters):
            logger.addFilter(_CheckedParameters())


def _cell_text(error: dict) -> str:
    if "cell_index" not in error:
        return "run"
    first = next((line for line in error.get("source", "").splitlines() if line.strip()), "")
    return f"cell {error['cell_index']} ({first[:60]!r})"


def salvage(run_dir: Path) -> Path | None:
    """A .running folder left by a killed run becomes .failed, its manifest naming the cell that was running."""
    work = runfolder.running(run_dir)
    if not (work.is_dir() and not work.is_symlink() and runfolder.is_ours(work)):
        return None
    manifest_path = work / "manifest.json"
    manifest = runfolder.read_json(manifest_path) or {}
    error = {"error": "Killed", "message": "the run stopped without finishing (killed, or the machine stopped)",
             **running_cell(work / "executed.ipynb")}
    if not isinstance(manifest.get("files"), list):  # killed before it listed its files: its working folder is all ours
        manifest["files"] = sorted({*ownership.written_files(work), "manifest.json"})
    manifest.update(status="killed", error=error, created_by=runfolder.CREATED_BY)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    target = runfolder.failed(run_dir)
    runfolder.replace(work, target)
    if (target / "executed.ipynb").is_file():
        print(f"note: an earlier run into {run_dir} was killed in {_cell_text(error)}; its partial notebook is "
              f"in {target}", file=sys.stderr)
    else:
        print(f"note: an earlier run into {run_dir} was killed before its notebook started; its manifest is in "
              f"{target}", file=sys.stderr)
    return target


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the failed run is kept."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def run(name: str, params_file: str | Path | None = None, sets: list[str] = (), out: str | None = None,
        progress_bar: bool = True, root: Path | None = None, execution: Execution | None = None) -> Path:
    """Execute notebook NAME; returns the finished run folder. Raises ParameterError or RunFailed.

    execution: the kernel's threads, and where the notebook's parallel tasks run: a local Dask cluster
    of single-threaded workers (at most one per usable core), or the cluster at a scheduler's address
    (`copystudy.common.parallel`)."""
    root = root or project_root()
    plan = prepare(name, params_file, sets, out, root, execution)
    for note in plan.notes:
        print(note, file=sys.stderr)
    run_dir, options = plan.run_dir, plan.execution
    info = {"pid": os.getpid(), "host": socket.gethostname(), "notebook": name, "run_dir": str(run_dir),
            "started": runfolder.now()}
    with runfolder.locked(run_dir, info) as previous:
        if previous:
            print(f"note: took over the lock of {runfolder.holder_text(previous)}, which is no longer running",
                  file=sys.stderr)
        salvaged = salvage(run_dir)
        work = runfolder.start(run_dir, info)
        try:
            with kernel_threads(options.threads), parallel.executor(options.workers, options.scheduler) as executor_info:
                return _execute(plan, work, list(sets), progress_bar, root, info["started"], executor_info,
                                keep_failed=bool(salvaged))
        except parallel.ExecutorError as exc:
            runfolder.remove(work)
            raise ParameterError(str(exc)) from None


def _execute(plan: Plan, work: Path, sets: list[str], progress_bar: bool, root: Path, started: str,
             executor_info: dict, keep_failed: bool = False) -> Path:
    """Run the notebook in `work`; a good run replaces the run folder (and removes an older .failed, unless
    it was salvaged from a killed run just now), a failed one becomes .failed."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from copystudy.common.report import INPUTS_FILE, TIMINGS_FILE

    run_dir = plan.run_dir
    (work / "params.yaml").write_text(yaml.safe_dump(plan.values, sort_keys=False))
    kernel = ensure_kernel()
    _quiet_papermill_parameter_warnings()
    manifest = {"created_by": runfolder.CREATED_BY, "notebook": relative_to_project(plan.notebook, root),
                "params_file": relative_to_project(plan.params_file, root), "overrides": sets, "seed": plan.values.get("seed"),
                "git": git_state(root), "versions": versions(), "machine": machine(), "kernel": kernel,
                "started": started, "status": "running", "pid": os.getpid(),
                "threads": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
                "executor": executor_info}
    manifest_path = work / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"running {plan.notebook.name} -> {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    error = None
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    # the kernel draws its live progress bars on this terminal and writes one line per loop into the notebook
    saved_target = os.environ.get(PROGRESS_TO)
    os.environ[PROGRESS_TO] = os.ttyname(sys.stderr.fileno()) if progress_bar and sys.stderr.isatty() else ""
    os.environ[parallel.TASK_LOG_ENV] = str(work / TASK_LOG)  # every parallel task's worker and times
    try:
        pm.execute_notebook(str(plan.notebook), str(work / "executed.ipynb"), parameters=plan.values,
                            kernel_name=kernel, cwd=str(work), progress_bar=progress_bar, log_output=False,
                            kernel_manager_class=local_kernel_manager())
    except PapermillExecutionError as exc:
        error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "error": exc.ename,
                 "message": exc.evalue, "source": exc.source}
    except KeyboardInterrupt as exc:
        kind = "Terminated" if isinstance(exc, _Terminated) else "KeyboardInterrupt"
        error = {"error": kind, "message": "interrupted", **running_cell(work / "executed.ipynb")}
    finally:
        os.environ.pop(PROGRESS_TO) if saved_target is None else os.environ.__setitem__(PROGRESS_TO, saved_target)
        os.environ.pop(parallel.TASK_LOG_ENV, None)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    manifest["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    manifest.update(finished=runfolder.now(), wall_seconds=round(time.perf_counter() - t0, 1),
                    status="failed" if error else "ok")
    manifest.pop("pid")
    for key, file in (("inputs_sha256", INPUTS_FILE), ("timings", TIMINGS_FILE)):
        if (work / file).exists():
            manifest[key] = json.loads((work / file).read_text())
            (work / file).unlink()
    if error:
        manifest["error"] = error
    _relative_papermill_paths(work / "executed.ipynb", root, plan.notebook)
    (work / runfolder.MARKER).unlink()
    manifest["files"] = sorted({*ownership.written_files(work), "manifest.json"})  # what a rerun may replace
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    target = runfolder.failed(run_dir) if error else run_dir
    runfolder.replace(work, target)
    if error:
        kept = (f"partial notebook kept in {target / 'executed.ipynb'}" if (target / "executed.ipynb").is_file()
                else f"no notebook was written; its manifest is in {target}")
        raise RunFailed(f"{plan.name}: {_cell_text(error)} failed with {error['error']}: {error['message']}; {kept}")
    if not keep_failed:
        runfolder.remove(runfolder.failed(run_dir))
    return run_dir


def _relative_papermill_paths(executed: Path, root: Path, notebook: Path) -> None:
    """papermill records where the notebook and its output were, as this machine's absolute paths; the
    committed notebook keeps them relative (to the project, and to the run folder)."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=nbformat.NO_CONVERT)
    except Exception:  # missing, or cut off by an interruption: left as it is
        return
    meta = nb.get("metadata", {}).get("papermill")
    if isinstance(meta, dict):
        meta.update(input_path=relative_to_project(notebook, root), output_path="executed.ipynb")
        nbformat.write(nb, str(executed))


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
