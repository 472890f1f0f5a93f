"""A checked run: which notebook, with which parameter values, into which folder.

`prepare` does everything that can be checked before a kernel starts, and writes nothing: the
execution options (--threads, --workers, --scheduler), the notebook's parameter declarations
(`copystudy.runner.params`), the defaults < the parameter file < --set values, each checked against
its spec and the notebook's rules across parameters (`copystudy.runner.rules`), the files and folders
they name, the models they name, and the run folder and its lock (`copystudy.runner.runfolder`).
`python -m copystudy run NAME --check` is `prepare` alone, so it refuses whatever a run would refuse
before its kernel starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from copystudy.runner import runfolder
from copystudy.runner.rules import check_rules, model_specs
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


def relative_to_project(path: Path, root: Path) -> str:
    """A path inside the project as a path relative to it ('params/x/default.yaml'), any other as it is:
    a run's manifest names no folder of the machine that made it."""
    try:
        return Path(path).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        return str(path)


def _real(run_dir: Path, notes: list[str], given: str) -> Path:
    """The run folder with every symbolic link resolved: a run replaces its folder, and a link (to an
    earlier run, say) would be replaced rather than the folder it points to."""
    real = Path(os.path.realpath(run_dir))
    if run_dir.is_symlink():
        notes.append(f"note: {given} {run_dir} is a symbolic link; the run writes to the folder it points to, {real}")
    return real


def choose_run_dir(name: str, values: dict, params_file: Path, sets: list[str], out: str | None,
                   root: Path, notes: list[str] | None = None) -> Path:
    """results/NAME/<set>[-<hash>] or --out, symbolic links resolved; never a folder that holds a run
    with other parameters, and never one the runner could not write or must not replace (see
    runfolder.check_writable). What the user should know is appended to `notes`."""
    notes = [] if notes is None else notes
    protected = [Path(os.path.realpath(p)) for p in (Path.cwd(), root)]
    if out:
        run_dir = Path(os.path.abspath(Path(out).expanduser()))  # "." and ".." resolved, so nothing hides behind them
        run_dir = _real(run_dir, notes, "--out")
        runfolder.check_writable(run_dir, protected)
        if _holds_other_params(run_dir, values):
            raise ParameterError(f"--out {run_dir} holds a run with different parameters; "
                                 "choose another folder or delete it")
        return run_dir
    base = root / "results" / name
    stem = params_file.stem if not sets else f"{params_file.stem}-{params_hash(values)}"
    run_dir = _real(base / stem, notes, "the run folder")
    if _holds_other_params(run_dir, values):
        other = _real(base / f"{params_file.stem}-{params_hash(values)}", notes, "the run folder")
        notes.append(f"note: {run_dir} holds a run with other parameters; writing to {other}")
        run_dir = other
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


@dataclass(frozen=True)
class Execution:
    """Where and how the kernel runs: not parameters, they change no number (see README, Speed)."""

    threads: int | None = None    # torch/BLAS/OpenMP threads of the kernel (None: 1)
    workers: int | None = None    # a local Dask cluster of this many single-threaded workers
    scheduler: str | None = None  # or the Dask cluster at this address


def check_execution(options: Execution, notes: list[str]) -> Execution:
    """The options as a run will use them: --threads >= 1, one executor, and --workers at most the
    usable cores (a cluster of your own, --scheduler, has no such cap); a note says when it was capped."""
    from copystudy.common import parallel

    if options.threads is not None and options.threads < 1:
        raise ParameterError(f"--threads must be a whole number >= 1, got {options.threads}")
    try:
        parallel.check_options(options.workers, options.scheduler)
    except parallel.ExecutorError as exc:
        raise ParameterError(str(exc)) from None
    cores = parallel.usable_cores()
    if options.workers is not None and options.workers > cores:
        notes.append(f"note: --workers {options.workers} is more than the {cores} cores this run may use; starting "
                     f"{cores} workers (--scheduler ADDRESS runs tasks on a cluster of yours, without this cap)")
        return Execution(options.threads, cores, options.scheduler)
    return options


def check_scheduler(options: Execution) -> None:
    """The Dask scheduler the run would use (--scheduler, else $COPYSTUDY_SCHEDULER) answers, or one line."""
    from copystudy.common import parallel

    if options.workers is not None:
        return
    address = options.scheduler or parallel.scheduler_address()
    problem = parallel.unreachable(address) if address else None
    if problem:
        given = "--scheduler" if options.scheduler else f"${parallel.SCHEDULER_ENV}"
        raise ParameterError(f"{given} {address}: no Dask scheduler answers there ({problem})")


def check_models(values: dict) -> None:
    """Every model spec among the parameters (`rules.model_specs`), before anything trains: a named
    pretrained model must be a local folder, or, under HF_HUB_OFFLINE=1, in the local Hugging Face
    cache (looked up there, no network). Each spec's keys were checked against its family's declared
    options by the rules (`rules.check_rules`)."""
    for key, spec in model_specs(values):
        name = spec.get("name_or_path")
        if isinstance(name, str) and name:
            problem = pretrained_problem(name)
            if problem:
                raise ParameterError(f"{key}.name_or_path: {problem}")


def pretrained_problem(name: str) -> str | None:
    """Why the pretrained model `name` cannot be loaded here, or None (as models.loading.resolve decides,
    without importing torch)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return None
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists():
        return f"{name} is not a folder holding a saved model"
    if os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("1", "true", "yes", "on"):
        return None  # a hub id, downloaded on first use
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or not a valid hub id
        return (f"{name!r} is neither a local folder nor in the local Hugging Face cache, and HF_HUB_OFFLINE=1 "
                "forbids downloading it; download it once with network access, or give a local folder")
    return None


@dataclass
class Plan:
    """A checked run: the notebook, its parameter values, the params file, the run folder, the execution
    options as the run will use them, and notes for the user (a capped --workers, a resolved link)."""

    name: str
    notebook: Path
    values: dict
    params_file: Path
    run_dir: Path
    execution: Execution = Execution()
    notes: list = field(default_factory=list)


def prepare(name: str, params_file: str | Path | None = None, sets: list[str] = (), out: str | None = None,
            root: Path | None = None, execution: Execution | None = None) -> Plan:
    """Everything that can be checked before a kernel starts; ParameterError (one line) if anything is off.

    The execution options, parameters against their specs and rules, the inputs they name on disk, the
    models they name, the run folder (new or ours, writable, not inside another run) and its lock (no
    live run writes it), and the Dask scheduler if one is named. Writes nothing: `run NAME --check` is
    this alone.
    """
    notes: list[str] = []
    options = check_execution(execution or Execution(), notes)
    root = root or project_root()
    notebook = find_notebook(name, root)
    declared = declared_parameters(notebook)
    values, params_file = resolve_parameters(name, params_file, list(sets), root, declared)
    check_inputs(declared, values)
    check_models(values)
    run_dir = choose_run_dir(name, values, params_file, list(sets), out, root, notes)
    holder = runfolder.lock_holder(run_dir)
    if holder is not None:
        raise runfolder.RunLocked.held_by(run_dir, holder)
    check_scheduler(options)
    return Plan(name, notebook, values, params_file, run_dir, options, notes)
