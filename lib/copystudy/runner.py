"""Run a notebook with papermill into its own results folder, with checked parameters and a manifest.

A run of notebook NAME with parameter set SET goes to results/NAME/SET/ (or --out). Before the kernel
starts, every parameter is checked against its declaration (`copystudy.params`), every input file
and folder the parameters name is checked on disk, and the run folder is checked to be new or ours
(`copystudy.runfolder`). The run then holds a lock on its folder, executes in SET.running/, and is
moved into place only when it succeeds, so a failed, interrupted or killed run never destroys the
last good one; a failed run is kept as SET.failed/ with its partial notebook and a manifest naming
the cell that was running.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from copystudy import runfolder
from copystudy.params import ParameterError, check_rules, declared_parameters, read_params_file, yaml_value

__all__ = ["ParameterError", "RunFailed", "declared_parameters", "resolve_parameters", "prepare", "run"]

KERNEL_NAME = "copystudy"
PATH_KEY_SUFFIXES = ("_dir", "_path", "_file", "_files")
VERSIONED_PACKAGES = ("torch", "numpy", "transformers", "diffusers", "peft", "safetensors", "constriction",
                      "shapiq", "papermill", "nbclient", "ipykernel", "pandas", "matplotlib", "seaborn",
                      "scikit-learn", "zstandard", "brotli", "pyppmd")


class RunFailed(RuntimeError):
    """A notebook cell raised, or the run was interrupted; the partial executed notebook is kept."""


def project_root() -> Path:
    """The folder holding notebooks/ and params/: $COPYSTUDY_ROOT, the cwd or a parent, or the source tree."""
    if os.environ.get("COPYSTUDY_ROOT"):
        return Path(os.environ["COPYSTUDY_ROOT"]).resolve()
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "notebooks").is_dir() and (folder / "params").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


# ---- notebooks and their parameters -------------------------------------------------------------
def notebook_name(path: Path) -> str:
    """'01_lm_compression.ipynb' -> 'lm_compression' (the order prefix is dropped)."""
    stem = path.stem
    head, _, tail = stem.partition("_")
    return tail if head.isdigit() and tail else stem


def notebooks(root: Path | None = None) -> dict[str, Path]:
    """Every notebook of the study by name, in file order."""
    root = root or project_root()
    return {notebook_name(p): p for p in sorted((root / "notebooks").glob("*.ipynb"))}


def find_notebook(name: str, root: Path | None = None) -> Path:
    found = notebooks(root)
    if name not in found:
        raise ParameterError(f"no notebook named {name!r}; valid names: {', '.join(found) or '(none)'}")
    return found[name]


def parameter_sets(name: str, root: Path | None = None) -> list[Path]:
    return sorted(((root or project_root()) / "params" / name).glob("*.yaml"))


def parse_set(item: str):
    """'key=value' from --set; the value is read as YAML (so 3, 0.5, 1e-3, true, [1, 2] and text all work)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ParameterError(f"--set expects KEY=VALUE, got {item!r}")
    return key.strip(), yaml_value(value) if value.strip() else None


def resolve_parameters(name: str, params_file: str | Path | None = None, sets: list[str] = (),
                       root: Path | None = None) -> tuple[dict, Path]:
    """Defaults of the notebook < the params file < --set values, each checked against its declared spec.

    Returns (values, params_file used). Raises a one-line ParameterError naming the source, the key,
    the valid values and what was given.
    """
    root = root or project_root()
    path = find_notebook(name, root)
    declared = declared_parameters(path)
    if params_file is None:
        params_file = root / "params" / name / "default.yaml"
    params_file = Path(params_file)
    if not params_file.is_file():
        sets_found = [p.name for p in parameter_sets(name, root)]
        what = "is a folder" if params_file.is_dir() else "not found"
        raise ParameterError(f"params file {params_file} {what}; sets for {name}: {sets_found or '(none)'}")
    loaded, lines = read_params_file(params_file)
    overrides = dict(parse_set(s) for s in sets)
    values = {k: p.default for k, p in declared.items()}
    overrides = _nested_sets(overrides, {**values, **loaded}, declared)
    for source, given in ((str(params_file), loaded), ("--set", overrides)):
        for key, value in given.items():
            where = f"{source}:{lines[key]}" if source != "--set" and key in lines else source
            if key not in declared:
                raise ParameterError(f"{where}: {name} has no parameter {key!r}; valid parameters: "
                                     f"{', '.join(declared)}")
            spec = declared[key].spec
            try:
                value = spec.check(value)
            except ValueError as exc:
                raise ParameterError(f"{where}: parameter {key!r} must be {spec} (default "
                                     f"{declared[key].default!r}), {exc}") from None
            values[key] = _absolute_paths(key, value, spec)
    check_rules(name, values)
    return values, params_file


def check_inputs(name: str, values: dict, root: Path | None = None) -> None:
    """Every input file and folder the parameters name exists and reads (text files, image folders)."""
    from copystudy import data

    declared = declared_parameters(find_notebook(name, root))
    for key, p in declared.items():
        value = values.get(key)
        if value is None:
            continue
        try:
            if p.spec.base == "text files":
                data.check_text_files(value, p.spec.min_files, name=key)
            elif p.spec.base == "image folder":
                data.check_image_folder(value, name=key)
        except (OSError, ValueError) as exc:
            message = str(exc) if str(exc).startswith(key) else f"{key}: {exc}"
            raise ParameterError(message) from None


def _nested_sets(overrides: dict, current: dict, declared: dict) -> dict:
    """--set model.name_or_path=gpt2 changes one key of a dict parameter (the rest is kept)."""
    out = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if not dot or key in declared:
            out[key] = value
            continue
        if head not in declared or not isinstance(current.get(head), dict):
            dicts = [k for k, v in current.items() if isinstance(v, dict)]
            raise ParameterError(f"--set {key}: {head!r} is not a dict parameter of this notebook; "
                                 f"dict parameters: {', '.join(dicts) or '(none)'}")
        target = out.setdefault(head, dict(current[head]))
        target[rest] = value
    return out


PATH_BASES = ("path", "text files", "image folder")


def _absolute_paths(key: str, value, spec=None):
    """Path parameters are made absolute, because the notebook runs inside its results folder: those
    whose spec is a path, text files or an image folder; in a dict, keys ending like a path
    (`cache_dir`, ...) and a model's local `name_or_path`."""
    if isinstance(value, dict):
        fixed = {k: v if k == "name_or_path" else _absolute_paths(k, v) for k, v in value.items()}
        local = fixed.get("name_or_path")
        if isinstance(local, str) and (local.startswith((".", "~")) or Path(local).expanduser().exists()):
            fixed["name_or_path"] = str(Path(local).expanduser().absolute())
        return fixed
    if not (spec.base in PATH_BASES if spec is not None else key.endswith(PATH_KEY_SUFFIXES)):
        return value
    fix = lambda v: str(Path(v).expanduser().absolute()) if isinstance(v, str) and v and "://" not in v else v
    return [fix(v) for v in value] if isinstance(value, list) else fix(value)


def params_hash(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def choose_run_dir(name: str, values: dict, params_file: Path, sets: list[str], out: str | None,
                   root: Path) -> Path:
    """results/NAME/<set>[-<hash>] or --out; never a folder that holds a run with other parameters, and
    never one the runner could not write or must not replace (see runfolder.check_writable)."""
    protected = [Path.cwd(), root]
    if out:
        run_dir = Path(out).expanduser().absolute()
        runfolder.check_writable(run_dir, protected)
        if _holds_other_params(run_dir, values):
            raise ParameterError(f"--out {run_dir} holds a run with different parameters; "
                                 "choose another folder or delete it")
        return run_dir
    base = root / "results" / name
    stem = params_file.stem if not sets else f"{params_file.stem}-{params_hash(values)}"
    run_dir = base / stem
    if _holds_other_params(run_dir, values):
        run_dir = base / f"{params_file.stem}-{params_hash(values)}"
        print(f"note: {base / stem} holds a run with other parameters; writing to {run_dir}", file=sys.stderr)
    runfolder.check_writable(run_dir, protected)
    return run_dir


def _holds_other_params(run_dir: Path, values: dict) -> bool:
    saved = run_dir / "params.yaml"
    if not saved.is_file():
        return False
    try:
        return (yaml.safe_load(saved.read_text()) or {}) != values
    except (OSError, ValueError, yaml.YAMLError):
        return True


@dataclass
class Plan:
    """A checked run: the notebook, its parameter values, the params file and the run folder."""

    name: str
    notebook: Path
    values: dict
    params_file: Path
    run_dir: Path


def prepare(name: str, params_file: str | Path | None = None, sets: list[str] = (), out: str | None = None,
            root: Path | None = None) -> Plan:
    """Everything that can be checked before a kernel starts; ParameterError (one line) if anything is off.

    Parameters against their specs, the inputs they name on disk, the run folder (new or ours,
    writable) and its lock (no live run writes it). Writes nothing: `run NAME --check` is this alone.
    """
    root = root or project_root()
    notebook = find_notebook(name, root)
    values, params_file = resolve_parameters(name, params_file, list(sets), root)
    check_inputs(name, values, root)
    run_dir = choose_run_dir(name, values, params_file, list(sets), out, root)
    holder = runfolder.lock_holder(run_dir)
    if holder is not None:
        raise runfolder.RunLocked(f"{run_dir} is being written by {runfolder._holder_text(holder)}; wait for it "
                                  "to finish or stop it, or give another --out")
    return Plan(name, notebook, values, params_file, run_dir)


# ---- kernel, manifest ---------------------------------------------------------------------------
def ensure_kernel() -> str:
    """Register this environment's python as the 'copystudy' Jupyter kernel if it is not already."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def ours() -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        except NoSuchKernel:
            return False
        return os.path.abspath(spec.argv[0]) == os.path.abspath(sys.executable)

    if not ours():
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="copystudy", prefix=sys.prefix)
        if not ours():
            spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
            raise RuntimeError(f"a kernel named {KERNEL_NAME!r} at {spec.resource_dir} runs {spec.argv[0]}, "
                               f"not this environment's {sys.executable}; remove it "
                               f"(jupyter kernelspec remove {KERNEL_NAME}) and run again")
    return KERNEL_NAME


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
    if not (work.is_dir() and runfolder.is_ours(work)):
        return None
    manifest_path = work / "manifest.json"
    manifest = runfolder._read_json(manifest_path) or {}
    error = {"error": "Killed", "message": "the run stopped without finishing (killed, or the machine stopped)",
             **running_cell(work / "executed.ipynb")}
    manifest.update(status="killed", error=error, created_by=runfolder.CREATED_BY)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    target = runfolder.failed(run_dir)
    runfolder.replace(work, target)
    print(f"note: an earlier run into {run_dir} was killed in {_cell_text(error)}; its partial notebook is "
          f"in {target}", file=sys.stderr)
    return target


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the failed run is kept."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def run(name: str, params_file: str | Path | None = None, sets: list[str] = (), out: str | None = None,
        progress_bar: bool = True, root: Path | None = None) -> Path:
    """Execute notebook NAME; returns the finished run folder. Raises ParameterError or RunFailed."""
    root = root or project_root()
    plan = prepare(name, params_file, sets, out, root)
    run_dir = plan.run_dir
    info = {"pid": os.getpid(), "host": socket.gethostname(), "notebook": name, "run_dir": str(run_dir),
            "started": runfolder.now()}
    with runfolder.locked(run_dir, info) as previous:
        if previous:
            print(f"note: took over the lock of {runfolder._holder_text(previous)}, which is no longer running",
                  file=sys.stderr)
        salvaged = salvage(run_dir)
        work = runfolder.start(run_dir, info)
        return _execute(plan, work, list(sets), progress_bar, root, info["started"], keep_failed=bool(salvaged))


def _execute(plan: Plan, work: Path, sets: list[str], progress_bar: bool, root: Path, started: str,
             keep_failed: bool = False) -> Path:
    """Run the notebook in `work`; a good run replaces the run folder (and removes an older .failed, unless
    it was salvaged from a killed run just now), a failed one becomes .failed."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from copystudy.report import INPUTS_FILE, TIMINGS_FILE

    run_dir = plan.run_dir
    (work / "params.yaml").write_text(yaml.safe_dump(plan.values, sort_keys=False))
    kernel = ensure_kernel()
    _quiet_papermill_parameter_warnings()
    manifest = {"created_by": runfolder.CREATED_BY, "notebook": str(plan.notebook.relative_to(root)),
                "params_file": str(plan.params_file), "overrides": sets, "seed": plan.values.get("seed"),
                "git": git_state(root), "versions": versions(), "machine": machine(), "kernel": kernel,
                "started": started, "status": "running", "pid": os.getpid()}
    manifest_path = work / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"running {plan.notebook.name} -> {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    error = None
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        pm.execute_notebook(str(plan.notebook), str(work / "executed.ipynb"), parameters=plan.values,
                            kernel_name=kernel, cwd=str(work), progress_bar=progress_bar, log_output=False)
    except PapermillExecutionError as exc:
        error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "error": exc.ename,
                 "message": exc.evalue, "source": exc.source}
    except KeyboardInterrupt as exc:
        kind = "Terminated" if isinstance(exc, _Terminated) else "KeyboardInterrupt"
        error = {"error": kind, "message": "interrupted", **running_cell(work / "executed.ipynb")}
    finally:
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
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    (work / runfolder.MARKER).unlink()
    target = runfolder.failed(run_dir) if error else run_dir
    runfolder.replace(work, target)
    if error:
        raise RunFailed(f"{plan.name}: {_cell_text(error)} failed with {error['error']}: {error['message']}; "
                        f"partial notebook kept in {target / 'executed.ipynb'}")
    if not keep_failed:
        runfolder.remove(runfolder.failed(run_dir))
    return run_dir


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
