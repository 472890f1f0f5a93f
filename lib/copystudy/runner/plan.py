"""A checked run: which notebook, with which parameter values, into which folder.

`prepare` does everything that can be checked before a kernel starts, and writes nothing: the
notebook's parameter declarations (`copystudy.runner.params`), the defaults < the parameter file < --set
values, each checked against its spec and the notebook's rules across parameters
(`copystudy.runner.rules`), the files and folders they name, and the run folder and its lock
(`copystudy.runner.runfolder`). `python -m copystudy run NAME --check` is `prepare` alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from copystudy.runner import runfolder
from copystudy.runner.rules import check_rules
from copystudy.runner.params import Parameter, ParameterError, declared_parameters, read_params_file, yaml_value

PATH_KEY_SUFFIXES = ("_dir", "_path", "_file", "_files")


def project_root() -> Path:
    """The folder holding notebooks/ and params/: $COPYSTUDY_ROOT, the cwd or a parent, or the source tree."""
    if os.environ.get("COPYSTUDY_ROOT"):
        return Path(os.environ["COPYSTUDY_ROOT"]).resolve()
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "notebooks").is_dir() and (folder / "params").is_dir():
            return folder
    return Path(__file__).resolve().parents[3]


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
                       root: Path | None = None, declared: dict[str, Parameter] | None = None) -> tuple[dict, Path]:
    """Defaults of the notebook < the params file < --set values, each checked against its declared spec.

    declared: the notebook's declarations, when the caller has read them already. Returns (values,
    params_file used). Raises a one-line ParameterError naming the source, the key, the valid values
    and what was given.
    """
    root = root or project_root()
    declared = declared if declared is not None else declared_parameters(find_notebook(name, root))
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


def check_inputs(declared: dict[str, Parameter], values: dict) -> None:
    """Every input file and folder the parameters name exists and reads (text files, image folders)."""
    from copystudy.common import data

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
        run_dir = Path(os.path.abspath(Path(out).expanduser()))  # "." and ".." resolved, so nothing hides behind them
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
    declared = declared_parameters(notebook)
    values, params_file = resolve_parameters(name, params_file, list(sets), root, declared)
    check_inputs(declared, values)
    run_dir = choose_run_dir(name, values, params_file, list(sets), out, root)
    holder = runfolder.lock_holder(run_dir)
    if holder is not None:
        raise runfolder.RunLocked.held_by(run_dir, holder)
    return Plan(name, notebook, values, params_file, run_dir)
