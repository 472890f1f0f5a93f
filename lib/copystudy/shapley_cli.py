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
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from .data import NotUTF8, decode_utf8
from .royalty import royalty_shares
from .shapley import ESTIMATORS, coalition_matrix, estimate_shapley


class GameError(ValueError):
    """A problem with the utilities file, phrased for the person who wrote it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Shapley values and royalty shares from a CSV of coalition utilities."
    parser.add_argument("utilities", help="CSV with columns coalition,utility[,sample]; coalition = names joined by '+'")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="exact",
                        help="exact enumeration (needs every coalition), permutation sampling with antithetic "
                             "pairs, or KernelSHAP with paired sampling (default: exact)")
    parser.add_argument("--budget", type=int, default=None,
                        help="value-function evaluations for permutation/kernel (default: 2**n)")
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
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise GameError(f"the exact estimator needs all {2**n} coalitions of {n} owners; missing: {shown}")
    if budget is not None and budget < 2:
        raise GameError(f"--budget must be at least 2, got {budget}")
    budget = 2**n if budget is None else budget

    def game(coalitions):
        values = table[np.atleast_2d(coalitions).astype(np.int64) @ (1 << np.arange(n))]
        if np.isnan(values).any():
            row = np.atleast_2d(coalitions)[np.flatnonzero(np.isnan(values))[0]]
            name = "+".join(o for o, m in zip(owners, row) if m) or "(empty coalition)"
            raise GameError(f"the {estimator} estimator asked for coalition {name}, which is not in the file")
        return values

    phi = estimate_shapley(game, n=n, estimator=estimator, budget=budget, seed=seed)
    shares = royalty_shares(phi)
    return {"owners": owners, "estimator": estimator, "budget": None if estimator == "exact" else budget,
            "seed": seed, "shapley": dict(zip(owners, map(float, phi))),
            "shares": dict(zip(owners, map(float, shares)))}


def main(args: argparse.Namespace) -> int:
    owners = None if args.owners is None else [o.strip() for o in args.owners.split(",")]
    try:
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
    print(f"({result['estimator']} estimator" + (f", budget {result['budget']}" if result["budget"] else "") + ")")
    return 0
