"""`python -m copystudy shapley UTILITIES.csv`: Shapley values and royalty shares of your own game.

The CSV has a header with columns `coalition,utility` and optionally `sample`. A coalition is its
owners' names joined by `+` ("alice+bob"; order does not matter), the empty coalition an empty field.
With a `sample` column (e.g. one generated output per sample id) the utilities are averaged per
coalition first; every coalition must then have the same samples.

Owner names cannot contain `+`: the separator makes "a+b" one owner or two indistinguishable in the
file. Pass `--owners a,b,c` to declare the owners: any other name in the file, or a declared name
with `+` in it, is then an error. Without --owners the owners are the names found in the file, and
two names that never appear apart in any listed coalition are reported as an error (they may be one
owner whose name contains `+`, and in any case their shares could not be told apart).

A partial table (not every coalition trained) is enough for the sampling estimators and for
`--estimator regression`. `--plan N --owners a,b,c` prints the N (at most) coalitions to train for
the chosen estimator, budget N and seed, as a CSV template; the same estimator, `--budget N` and
`--seed` then accept the filled-in file. `--budget` counts distinct coalitions (models to train): the
permutation estimator walks as many antithetic pairs as fit. When the file lacks coalitions an
estimator needs, the one-line error names them.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from copystudy.common.data import NotUTF8, decode_utf8
from copystudy.attribution.royalty import royalty_shares
from copystudy.attribution.shapley import ESTIMATORS, coalition_matrix, exact_shapley
from copystudy.attribution.shapley_estimators import (MissingCoalitions, at_distinct_budget, kernel_shapley,
                                                      permutation_shapley, planned_coalitions, regression_shapley)


class GameError(ValueError):
    """A problem with the utilities file, phrased for the person who wrote it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Shapley values and royalty shares from a CSV of coalition utilities."
    parser.add_argument("utilities", nargs="?", default=None,
                        help="CSV with columns coalition,utility[,sample]; coalition = names joined by '+' "
                             "(optional with --plan and --owners)")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="exact",
                        help="exact enumeration (needs every coalition), permutation sampling with antithetic "
                             "pairs, KernelSHAP with paired sampling, or regression: KernelSHAP's weighted least "
                             "squares over exactly the coalitions in the file (needs the empty and full ones) "
                             "(default: exact)")
    parser.add_argument("--budget", type=int, default=None,
                        help="distinct coalitions the permutation/kernel estimator may evaluate (default: 2**n "
                             "for a complete file, else the number of coalitions in the file)")
    parser.add_argument("--plan", type=int, default=None, metavar="N",
                        help="print the coalitions to train for --estimator (permutation, kernel; regression and "
                             "the default, exact, get kernel's) with a budget of N and --seed, as a CSV template, "
                             "and exit")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling estimators")
    parser.add_argument("--owners", default=None,
                        help="comma-separated owner names in output order (declares the players; default: "
                             "names found in the file, sorted)")
    parser.add_argument("--json", action="store_true", help="print JSON with keys shapley and shares")


def _parse_coalition(field: str, line: int) -> frozenset[str]:
    field = field.strip()
    if not field:
        return frozenset()
    names = [name.strip() for name in field.split("+")]
    if any(not name for name in names):
        raise GameError(f"line {line}: coalition {field!r} has an empty owner name (a stray '+')")
    if len(set(names)) != len(names):
        raise GameError(f"line {line}: coalition {field!r} lists an owner twice")
    return frozenset(names)


def read_utilities(path: str | Path) -> dict[frozenset[str], float]:
    """Read the CSV into coalition -> utility (averaged over samples when there is a sample column)."""
    path = Path(path)
    if path.is_dir():
        raise GameError(f"{path} is a folder; give the CSV file of coalition utilities (coalition,utility[,sample])")
    if not path.is_file():
        raise GameError(f"{path}: no such file")
    try:
        text = decode_utf8(path.read_bytes())
    except NotUTF8 as exc:
        raise GameError(f"{path}: line {exc.line} is not UTF-8 (byte 0x{exc.byte:02x}); save the file as CSV UTF-8") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "coalition" not in columns or "utility" not in columns:
            raise GameError(f"{path}: the header must have columns coalition,utility[,sample]; got {columns}")
        unknown = set(columns) - {"coalition", "utility", "sample"}
        if unknown:
            raise GameError(f"{path}: unknown column(s) {sorted(unknown)}; valid: coalition, utility, sample")
        has_sample = "sample" in columns
        rows: dict[tuple, float] = {}
        first_line: dict[tuple, int] = {}
        for row_fields in reader:
            line = reader.line_num
            if None in row_fields:
                raise GameError(f"{path}: line {line} has {len(columns) + len(row_fields[None])} fields, the header "
                                f"{len(columns)} ({','.join(columns)}); a name with a comma must be quoted")
            if None in row_fields.values():
                raise GameError(f"{path}: line {line} has fewer fields than the header ({','.join(columns)})")
            row = {k.strip(): v for k, v in row_fields.items()}
            coalition = _parse_coalition(row["coalition"], line)
            try:
                utility = float(row["utility"])
            except ValueError:
                raise GameError(f"line {line}: utility {row['utility']!r} is not a number") from None
            if not np.isfinite(utility):
                raise GameError(f"line {line}: utility {row['utility']!r} is not finite")
            key = (coalition, row["sample"].strip()) if has_sample else (coalition,)
            if key in rows:
                what = "+".join(sorted(coalition)) or "(empty coalition)"
                extra = f" and sample {key[1]!r}" if has_sample else ""
                raise GameError(f"line {line}: duplicated row for coalition {what}{extra} (first on line {first_line[key]})")
            rows[key] = utility
            first_line[key] = line
    if not rows:
        raise GameError(f"{path}: no rows")
    if not has_sample:
        return {key[0]: value for key, value in rows.items()}
    samples: dict[frozenset, dict[str, float]] = {}
    for (coalition, sample), value in rows.items():
        samples.setdefault(coalition, {})[sample] = value
    reference = None
    for coalition, by_sample in samples.items():
        if reference is None:
            reference = (coalition, set(by_sample))
        elif set(by_sample) != reference[1]:
            a = "+".join(sorted(coalition)) or "(empty)"
            b = "+".join(sorted(reference[0])) or "(empty)"
            raise GameError(f"coalition {a} has samples {sorted(by_sample)} but coalition {b} has "
                            f"{sorted(reference[1])}: every coalition needs the same samples")
    return {coalition: float(np.mean(list(by_sample.values()))) for coalition, by_sample in samples.items()}


def resolve_owners(utilities: dict[frozenset[str], float], declared: list[str] | None = None) -> list[str]:
    """The players, checked against the coalitions (see the module docstring on '+' in names)."""
    found = sorted(set().union(*utilities))
    if declared is not None:
        for name in declared:
            if "+" in name:
                raise GameError(f"owner name {name!r} contains '+', the coalition separator; rename the owner")
            if not name:
                raise GameError("--owners has an empty name")
        if len(set(declared)) != len(declared):
            raise GameError("--owners lists a name twice")
        extra = [name for name in found if name not in declared]
        if extra:
            raise GameError(f"coalitions name owner(s) {extra} not in --owners {declared}: a name split at "
                            "'+' gives such pieces, and owner names may not contain '+'")
        return list(declared)
    if not found:
        raise GameError("no owners: every coalition is empty")
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            if all((a in c) == (b in c) for c in utilities):
                raise GameError(f"owners {a!r} and {b!r} never appear apart in any coalition: either one owner's "
                                f"name contains '+' (not allowed: '{a}+{b}' is read as two owners) or coalitions "
                                "are missing; declare the owners with --owners")
    return found


def game_table(utilities: dict[frozenset[str], float], owners: list[str]) -> tuple[np.ndarray, list[str]]:
    """Table by bit mask (NaN where a coalition is missing) and the names of the missing coalitions."""
    table = np.full(2 ** len(owners), np.nan)
    for k, row in enumerate(coalition_matrix(len(owners))):
        key = frozenset(o for o, member in zip(owners, row) if member)
        if key in utilities:
            table[k] = utilities[key]
    missing = ["+".join(o for o, m in zip(owners, row) if m) or "(empty coalition)"
               for row, v in zip(coalition_matrix(len(owners)), table) if np.isnan(v)]
    return table, missing


def coalition_name(mask: int, owners: list[str]) -> str:
    return "+".join(o for i, o in enumerate(owners) if mask >> i & 1)


def _shown(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def sampler(estimator: str, seed: int):
    """estimator(game, n, budget) for a sampling estimator, with budget in distinct coalitions."""
    def permutation(game, n, budget):
        if budget >= 2**n:
            return permutation_shapley(game, n, budget, seed=seed)
        return at_distinct_budget(lambda g, m, b: permutation_shapley(g, m, b, seed=seed), game, n, budget)[0]

    def kernel(game, n, budget):
        return kernel_shapley(game, n, budget, seed=seed)

    return {"permutation": permutation, "kernel": kernel, "regression": kernel}[estimator]


def _check_permutation_budget(estimator: str, n: int, budget: int) -> None:
    if estimator == "permutation" and budget < min(2 * n, 2**n):
        raise GameError(f"the permutation estimator needs a budget of at least {2 * n} coalitions with {n} owners "
                        "(the empty and full coalitions and one antithetic pair of permutations)")


def plan(owners: list[str], estimator: str, budget: int, seed: int = 0) -> list[str]:
    """The coalitions (names joined by '+', '' for the empty one) to train for an estimator, budget and seed."""
    if estimator == "exact":
        raise GameError("the exact estimator needs every coalition; --plan is for permutation, kernel, regression")
    if budget < 2:
        raise GameError(f"--plan needs a budget of at least 2 coalitions, got {budget}")
    n = len(owners)
    _check_permutation_budget(estimator, n, budget)
    if n > 20:
        raise GameError(f"{n} owners: too many to plan coalitions for")
    return [coalition_name(m, owners) for m in planned_coalitions(sampler(estimator, seed), n, budget)]


def solve(path, estimator: str = "exact", budget: int | None = None, seed: int = 0,
          owners: list[str] | None = None) -> dict:
    """Read a utilities CSV and return {'owners', 'shapley', 'shares', ...} (raises GameError)."""
    utilities = read_utilities(path)
    owners = resolve_owners(utilities, owners)
    n = len(owners)
    if n > 20:
        raise GameError(f"{n} owners: a game this large cannot come from a table of coalitions")
    table, missing = game_table(utilities, owners)
    if estimator == "exact" and missing:
        raise GameError(f"the exact estimator needs all {2**n} coalitions of {n} owners; missing: {_shown(missing)} "
                        "(a partial table: --estimator regression, or --plan N for a sampling estimator)")
    if budget is not None and budget < 2:
        raise GameError(f"--budget must be at least 2, got {budget}")
    present = {m: float(v) for m, v in enumerate(table) if not np.isnan(v)}
    if estimator == "regression":
        try:
            phi = regression_shapley(present, n)
        except MissingCoalitions as err:
            names = [coalition_name(m, owners) or "(empty coalition)" for m in err.needed]
            raise GameError(f"{err}; add: {_shown(names)}") from None
        budget = len(present)
    elif estimator == "exact":
        phi = exact_shapley(table)
    else:
        budget = (2**n if not missing else len(present)) if budget is None else budget
        _check_permutation_budget(estimator, n, budget)
        estimate = sampler(estimator, seed)
        needed = planned_coalitions(estimate, n, budget)
        absent = [coalition_name(m, owners) or "(empty coalition)" for m in needed if m not in present]
        if absent:
            raise GameError(f"the {estimator} estimator with budget {budget} and seed {seed} needs {len(needed)} "
                            f"coalitions, {len(absent)} not in the file: {_shown(absent)} (`--plan {budget} "
                            f"--estimator {estimator} --seed {seed}` lists them all)")
        weights = 1 << np.arange(n)
        phi = estimate(lambda c: table[np.atleast_2d(c).astype(np.int64) @ weights], n, budget)
    shares = royalty_shares(phi)
    if estimator != "exact" and budget > 2**n:  # a game has no more coalitions than 2^n to evaluate
        budget = 2**n
    return {"owners": owners, "estimator": estimator, "budget": None if estimator == "exact" else budget,
            "seed": seed, "shapley": dict(zip(owners, map(float, phi))),
            "shares": dict(zip(owners, map(float, shares)))}


def _csv_field(text: str) -> str:
    return f'"{text}"' if any(ch in text for ch in ',"\n') else text


def main(args: argparse.Namespace) -> int:
    owners = None if args.owners is None else [o.strip() for o in args.owners.split(",")]
    try:
        if args.plan is not None:
            if args.utilities is not None:
                owners = resolve_owners(read_utilities(args.utilities), owners)
            elif owners is None:
                raise GameError("--plan needs the owners: --owners a,b,c (or a utilities file to read them from)")
            else:
                owners = resolve_owners({frozenset(owners): 0.0}, owners)
            estimator = "kernel" if args.estimator == "exact" else args.estimator
            coalitions = plan(owners, estimator, args.plan, args.seed)
            print("coalition,utility")
            print("\n".join(f"{_csv_field(c)}," for c in coalitions))
            accepted = ("regression" if args.estimator == "regression" else
                        f"{estimator} --budget {args.plan} --seed {args.seed}")
            print(f"# {len(coalitions)} coalitions for --estimator {accepted}; fill in the utility column",
                  file=sys.stderr)
            return 0
        if args.utilities is None:
            raise GameError("a utilities file is needed (or --plan N --owners a,b,c to plan one)")
        result = solve(args.utilities, args.estimator, args.budget, args.seed, owners)
    except GameError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    width = max(len("owner"), *(len(o) for o in result["owners"]))
    print(f"{'owner':<{width}}  {'shapley':>12}  {'share':>7}")
    for owner in result["owners"]:
        print(f"{owner:<{width}}  {result['shapley'][owner]:>12.6g}  {result['shares'][owner]:>7.2%}")
    budget = f", budget {result['budget']}" if result["budget"] else ""
    if result["budget"] and args.budget and args.budget > result["budget"]:
        budget += f": every coalition of {len(result['owners'])} owners, of the {args.budget} asked"
    print(f"({result['estimator']} estimator{budget})")
    return 0
