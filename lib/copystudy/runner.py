"""Run a notebook with papermill into its own results folder, with validated parameters and a manifest.

A run of notebook NAME with parameter set SET goes to results/NAME/SET/ (or --out). It executes in
results/NAME/SET.running/ and is moved into place only when it succeeds, so a failed or interrupted
run never destroys the last good one; a failed run is kept as SET.failed/ with its partial notebook.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

KERNEL_NAME = "copystudy"
PATH_KEY_SUFFIXES = ("_dir", "_path", "_file", "_files")
VERSIONED_PACKAGES = ("torch", "numpy", "transformers", "diffusers", "peft", "safetensors", "constriction",
                      "shapiq", "papermill", "nbclient", "ipykernel", "pandas", "matplotlib", "seaborn",
                      "scikit-learn", "zstandard", "brotli", "pyppmd")


class ParameterError(ValueError):
    """A parameter set that does not fit the notebook; raised before anything runs."""


class RunFailed(RuntimeError):
    """A notebook cell raised; the partial executed notebook is kept."""


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


@dataclass
class Parameter:
    name: str
    default: object
    type: str
    help: str


def declared_parameters(path: Path) -> dict[str, Parameter]:
    """The parameters cell of a notebook: name -> default, type (from the default) and its comment.

    Read with ast and tokenize (papermill's own parser drops a parameter whose comment holds '=').
    """
    import io
    import tokenize

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path.name} must have exactly one code cell tagged 'parameters', found {len(cells)}")
    source = cells[0].source
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, (ast.Assign, ast.AnnAssign))):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParameterError(f"{path.name}: parameter {targets[0].id} must have a literal default") from exc
        name = targets[0].id
        kind = "any" if default is None else type(default).__name__
        out[name] = Parameter(name, default, kind, comments.get(node.end_lineno, ""))
    return out


def parameter_sets(name: str, root: Path | None = None) -> list[Path]:
    return sorted(((root or project_root()) / "params" / name).glob("*.yaml"))


def parse_set(item: str):
    """'key=value' from --set; the value is read as YAML (so 3, 0.5, true, [1, 2] and text all work)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ParameterError(f"--set expects KEY=VALUE, got {item!r}")
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def _type_ok(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def resolve_parameters(name: str, params_file: str | Path | None = None, sets: list[str] = (),
                       root: Path | None = None) -> tuple[dict, Path]:
    """Defaults of the notebook < the params file < --set values, checked against the declarations.

    Returns (values, params_file used). Raises ParameterError naming the bad key and the valid ones.
    """
    root = root or project_root()
    path = find_notebook(name, root)
    declared = declared_parameters(path)
    if params_file is None:
        params_file = root / "params" / name / "default.yaml"
    params_file = Path(params_file)
    if not params_file.is_file():
        sets_found = [p.name for p in parameter_sets(name, root)]
        raise ParameterError(f"params file {params_file} not found; sets for {name}: {sets_found or '(none)'}")
    loaded = yaml.safe_load(params_file.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ParameterError(f"{params_file} must hold a mapping of parameter names to values")
    overrides = dict(parse_set(s) for s in sets)
    values = {k: p.default for k, p in declared.items()}
    overrides = _nested_sets(overrides, {**values, **loaded}, declared)
    for source, given in ((str(params_file), loaded), ("--set", overrides)):
        for key, value in given.items():
            if key not in declared:
                raise ParameterError(f"{source}: {name} has no parameter {key!r}; valid parameters: "
                                     f"{', '.join(declared)}")
            default = declared[key].default
            if not _type_ok(value, default):
                raise ParameterError(f"{source}: parameter {key!r} must be {declared[key].type} "
                                     f"(default {default!r}), got {type(value).__name__} {value!r}")
            if isinstance(default, float) and isinstance(value, int):
                value = float(value)
            values[key] = _absolute_paths(key, value)
    return values, params_file


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


def _absolute_paths(key: str, value):
    """Path-like parameters are made absolute, because the notebook runs inside its results folder:
    keys ending like a path (`data_dir`, `text_files`, ...), and a model's local `name_or_path`."""
    if isinstance(value, dict):
        fixed = {k: v if k == "name_or_path" else _absolute_paths(k, v) for k, v in value.items()}
        local = fixed.get("name_or_path")
        if isinstance(local, str) and (local.startswith((".", "~")) or Path(local).expanduser().exists()):
            fixed["name_or_path"] = str(Path(local).expanduser().absolute())
        return fixed
    if not key.endswith(PATH_KEY_SUFFIXES):
        return value
    fix = lambda v: str(Path(v).expanduser().absolute()) if isinstance(v, str) and v and "://" not in v else v
    return [fix(v) for v in value] if isinstance(value, list) else fix(value)


def params_hash(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def choose_run_dir(name: str, values: dict, params_file: Path, sets: list[str], out: str | None,
                   root: Path) -> Path:
    """results/NAME/<set>[-<hash>]; never a folder that holds a run with other parameters."""
    if out:
        run_dir = Path(out).absolute()
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
    return run_dir


def _holds_other_params(run_dir: Path, values: dict) -> bool:
    saved = run_dir / "params.yaml"
    return saved.exists() and (yaml.safe_load(saved.read_text()) or {}) != values


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
def run(name: str, params_file: str | Path | None = None, sets: list[str] = (), out: str | None = None,
        progress_bar: bool = True, root: Path | None = None) -> Path:
    """Execute notebook NAME; returns the finished run folder. Raises ParameterError or RunFailed."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    root = root or project_root()
    notebook = find_notebook(name, root)
    values, params_file = resolve_parameters(name, params_file, list(sets), root)
    run_dir = choose_run_dir(name, values, params_file, list(sets), out, root)
    work = run_dir.with_name(run_dir.name + ".running")
    failed = run_dir.with_name(run_dir.name + ".failed")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    kernel = ensure_kernel()
    manifest = {"notebook": str(notebook.relative_to(root)), "params_file": str(params_file),
                "overrides": list(sets), "seed": values.get("seed"), "git": git_state(root),
                "versions": versions(), "machine": machine(), "kernel": kernel,
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"running {notebook.name} -> {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(work / "executed.ipynb"), parameters=values, kernel_name=kernel,
                            cwd=str(work), progress_bar=progress_bar, log_output=False)
    except PapermillExecutionError as exc:
        error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "error": exc.ename,
                 "message": exc.evalue, "source": exc.source}
    except KeyboardInterrupt:
        error = {"error": "KeyboardInterrupt", "message": "interrupted"}
    manifest["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    manifest.update(finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    wall_seconds=round(time.perf_counter() - t0, 1), status="failed" if error else "ok")
    inputs = work / "inputs.json"
    if inputs.exists():
        manifest["inputs_sha256"] = json.loads(inputs.read_text())
        inputs.unlink()
    if error:
        manifest["error"] = error
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    target = failed if error else run_dir
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    if error:
        where = f"cell {error.get('exec_count') or error.get('cell_index')}" if "cell_index" in error else "run"
        raise RunFailed(f"{name}: {where} failed with {error['error']}: {error['message']}\n"
                        f"partial notebook kept in {target / 'executed.ipynb'}")
    shutil.rmtree(failed, ignore_errors=True)
    return run_dir
