"""python -m copystudy: list the notebooks, run them, and the tools the experiments provide."""

from __future__ import annotations

import argparse
import importlib
import sys

import yaml

from copystudy.runner import execution, plan
from copystudy.runner.params import ParameterError, declared_parameters

# Tools from the experiment modules: subcommand -> (module with add_arguments/main, one-line help).
SUBCOMMANDS = {
    "compress": ("copystudy.tools.compress_cli", "compress a file with the language model a run trained: measure "
                 "rates, or write FILE.lmz with -o"),
    "decompress": ("copystudy.tools.lmz_cli", "decompress an .lmz file with the run whose model compressed it"),
    "shapley": ("copystudy.tools.shapley_cli", "Shapley values and royalty shares of a game given as a CSV"),
    "site": ("copystudy.runner.site", "render the canonical runs to a static HTML site with an index page"),
}


def flow_yaml(value) -> str:
    """A value as one line of YAML, as --set and the parameter files write it ({a: 1, b: [2, 3]})."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def cmd_list(args) -> int:
    """Notebooks and their parameters, one line each as the notebook declares them
    (`name = default  # valid values: meaning`, the default in YAML), and the parameter sets in params/."""
    root = plan.project_root()
    for name, path in plan.notebooks(root).items():
        print(f"{name}  ({path.relative_to(root)})")
        for p in declared_parameters(path).values():
            print(f"    {p.name} = {flow_yaml(p.default)}  # {p.type}: {p.help}")
        sets = [str(s.relative_to(root)) for s in plan.parameter_sets(name, root)]
        print(f"    parameter sets: {', '.join(sets) or '(none)'}\n")
    return 0


def cmd_run(args) -> int:
    root = plan.project_root()
    names = list(plan.notebooks(root)) if args.name == "all" else [args.name]
    if args.name == "all" and (args.params or args.set or args.out):
        print("error: 'run all' runs every notebook with its default set; --params/--set/--out need a NAME",
              file=sys.stderr)
        return 2
    failures = []
    options = plan.Execution(args.threads, args.workers, args.scheduler)
    for name in names:
        try:
            if args.check:
                checked = plan.prepare(name, args.params, args.set or [], args.out, root=root, execution=options)
                for note in checked.notes:
                    print(note, file=sys.stderr)
                print(f"{name}: ok ({len(checked.values)} parameters, {checked.params_file}); would write "
                      f"{checked.run_dir}")
                continue
            run_dir = execution.run(name, args.params, args.set or [], args.out, progress_bar=not args.quiet,
                                    root=root, execution=options)
            print(f"{name}: done -> {run_dir}")
        except ParameterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except execution.RunFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures.append(name)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _workers(text: str) -> int:
    if text == "auto":
        from copystudy.common.parallel import usable_cores

        return usable_cores()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 or 'auto', got {text!r}") from None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; a tool's module (and torch with it) is imported only when `command` is that tool."""
    parser = argparse.ArgumentParser(prog="python -m copystudy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="notebooks, their parameters and parameter sets").set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="run one notebook (or 'all') with papermill into results/")
    run.add_argument("name", help="notebook name without its order prefix, or 'all'")
    run.add_argument("--params", help="YAML parameter set (default: params/NAME/default.yaml)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    run.add_argument("--out", help="run folder (default: results/NAME/<set>)")
    run.add_argument("--quiet", action="store_true", help="no papermill progress bar")
    run.add_argument("--threads", type=int, metavar="N",
                     help="threads for torch, BLAS and OpenMP in the notebook's kernel (default 1: the study's "
                          "models are small; more for a large pretrained model on a machine of its own)")
    run.add_argument("--workers", type=_workers, metavar="N",
                     help="run the parallel tasks (coalition models, sweep cells, ladder rungs, prefix models...) on a "
                          "local Dask cluster of N single-threaded worker processes; 'auto': one per core")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run them on the Dask cluster at ADDRESS instead (default: $COPYSTUDY_SCHEDULER if set)")
    run.add_argument("--check", action="store_true",
                     help="check everything a run checks before its kernel starts (parameters and their rules, the "
                          "inputs and models they name, the run folder, --threads/--workers/--scheduler), then exit")
    run.set_defaults(func=cmd_run)
    for tool, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(tool, help=help_text)
        p.set_defaults(func=_lazy(module), module=module)
        if tool != command:
            continue
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(func=lambda a, m=module: _missing(m))
    return parser


def _lazy(module: str):
    return lambda args: importlib.import_module(module).main(args)


def _missing(module: str) -> int:
    print(f"error: {module} is not available in this installation", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return args.func(args)
