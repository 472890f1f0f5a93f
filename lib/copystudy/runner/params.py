"""Notebook parameters: declared in the notebook, set from YAML and --set, checked before a kernel starts.

Each line of a notebook's cell tagged `parameters` declares one parameter, its default, its *spec*
(the valid values) and what it means, the spec and the meaning separated by the first colon:

    train_steps = 600  # int >= 1: optimiser steps
    heldout_fraction = 0.1  # float in (0, 1): share of the bytes held out
    distance = "l2"  # one of "l2", "tiled_l2": the distance the extraction criterion uses
    digit_owners = [0, 1, 2]  # list of unique int in [0, 9]: digit classes held by one owner each
    work_bytes = [1500, 4000]  # range of int >= 1: size range [low, high] of the works
    eval_bytes = None  # int >= 1 or None: cap on the coded bytes (None: all)
    text_files = None  # text files (at least 2) or None: your documents (paths or globs); None: Python's docs
    data_dir = None  # image folder or None: root/<owner>/*.png

The grammar of a spec:

    spec        := part [" or None"]
    part        := "list of " ["unique " | "increasing "] item     a non-empty list
                 | "range of " item                               [low, high] with low <= high
                 | item
    item        := "one of " literal {", " literal}               e.g. one of "l2", "tiled_l2"
                 | ["even "] base {bound}
    base        := int | float | bool | str | path | dict | text files ["(at least N)"] | image folder
    bound       := (">=" | ">" | "<=" | "<") number | "in" ("[" | "(") number ", " number ("]" | ")")

Floats are finite; an int parameter takes a whole-number float (1e3); a float takes an int. `text
files` is a list of paths or glob patterns (one string is a list of one) and `image folder` a folder
of owner sub-folders; both are checked on disk before the kernel starts (see `copystudy.common.data`).
"""

from __future__ import annotations

import ast
import io
import math
import operator
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import yaml


class ParameterError(ValueError):
    """A parameter set or an input that does not fit the notebook; raised before anything runs."""


# ---- specs --------------------------------------------------------------------------------------
BASES = ("int", "float", "bool", "str", "path", "dict", "text files", "image folder")
_BOUND = re.compile(r"\s*(?:(>=|<=|>|<)\s*(\S+)|in\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])]))")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Spec:
    """The valid values of one parameter, read from the text of its declaration."""

    text: str
    base: str = "any"           # one of BASES, or "choice" for `one of ...`
    choices: tuple = ()
    bounds: tuple = ()          # ((op, number), ...)
    even: bool = False
    container: str | None = None  # None, "list" or "range"
    order: str | None = None    # for lists: None, "unique" or "increasing"
    optional: bool = False      # None is valid
    min_files: int = 1          # text files: documents needed

    def check(self, value):
        """The value, coerced (int -> float, '1e-3' -> 0.001, 'a.txt' -> ['a.txt'] for text files); or ValueError."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("got None")
        if self.container is None:
            return self._item(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"got {type(value).__name__} {value!r}, not a list")
        items = [self._item(v, f"item {i + 1}: ") for i, v in enumerate(value)]
        if not items:
            raise ValueError("got an empty list")
        if self.container == "range":
            if len(items) != 2 or items[0] > items[1]:
                raise ValueError(f"got {value!r}, not [low, high] with low <= high")
        elif self.order == "unique":
            for i, v in enumerate(items):
                if v in items[:i]:
                    raise ValueError(f"got {value!r}: {v!r} appears twice")
        elif self.order == "increasing":
            for a, b in zip(items, items[1:]):
                if not a < b:
                    raise ValueError(f"got {value!r}: not increasing ({a!r} then {b!r})")
        return items

    def _item(self, value, where: str = ""):
        got = f"{where}got {type(value).__name__} {value!r}"
        if self.base == "choice":
            if value in self.choices and not isinstance(value, bool):
                return value
            raise ValueError(f"{where}got {value!r}")
        if self.base == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(got)
        if self.base in ("str", "path", "image folder"):
            if isinstance(value, str) and (value or self.base == "str"):
                return value
            raise ValueError(got)
        if self.base == "text files":
            value = [value] if isinstance(value, str) else value
            if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
                return list(value)
            raise ValueError(f"{got}, not a path or a list of paths")
        if self.base == "dict":
            if isinstance(value, dict):
                return value
            raise ValueError(got)
        if self.base in ("int", "float"):
            value = _number(value, self.base, got)
            for op, bound in self.bounds:
                if not _OPS[op](value, bound):
                    raise ValueError(f"{where}got {value!r}")
            if self.even and value % 2:
                raise ValueError(f"{where}got {value!r}, which is odd")
            return value
        return value

    def __str__(self) -> str:
        return self.text


def _number(value, base: str, got: str):
    if isinstance(value, bool):
        raise ValueError(got)
    if isinstance(value, str) and base == "float":
        try:
            value = float(value)
        except ValueError:
            raise ValueError(got) from None
    if not isinstance(value, (int, float)):
        raise ValueError(got)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"got {value!r}, which is not finite")
    if base == "float":
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(got)
        return int(value)
    return value


def parse_spec(text: str) -> Spec:
    """A Spec from its text (the grammar is in the module docstring); ValueError if it does not read."""
    rest = text.strip()
    fields: dict = {"text": rest}
    if rest.endswith(" or None"):
        fields["optional"], rest = True, rest[: -len(" or None")].strip()
    for container in ("list", "range"):
        if rest.startswith(f"{container} of "):
            fields["container"], rest = container, rest[len(container) + 4:].strip()
            if container == "list":
                for order in ("unique", "increasing"):
                    if rest.startswith(order + " "):
                        fields["order"], rest = order, rest[len(order) + 1:].strip()
    if rest.startswith("one of "):
        try:
            choices = ast.literal_eval(f"({rest[len('one of '):]},)")
        except (ValueError, SyntaxError):
            raise ValueError(f"cannot read the choices in {text!r}") from None
        return Spec(base="choice", choices=tuple(choices), **fields)
    if rest.startswith("even "):
        fields["even"], rest = True, rest[5:].strip()
    base = next((b for b in sorted(BASES, key=len, reverse=True) if rest == b or rest.startswith(b + " ")), None)
    if base is None:
        raise ValueError(f"{text!r} does not start with a type ({', '.join(BASES)}, one of ..., list of ...)")
    rest = rest[len(base):].strip()
    if base == "text files":
        m = re.fullmatch(r"\(at least (\d+)\)", rest)
        if rest and not m:
            raise ValueError(f"cannot read {rest!r} in {text!r} (expected '(at least N)')")
        return Spec(base=base, min_files=int(m.group(1)) if m else 1, **fields)
    bounds = []
    while rest:
        m = _BOUND.match(rest)
        if not m or base not in ("int", "float"):
            raise ValueError(f"cannot read {rest!r} in {text!r} (expected a bound such as '>= 1' or 'in (0, 1)')")
        try:
            if m.group(1):
                bounds.append((m.group(1), float(m.group(2))))
            else:
                bounds.append((">=" if m.group(3) == "[" else ">", float(m.group(4))))
                bounds.append(("<=" if m.group(6) == "]" else "<", float(m.group(5))))
        except ValueError:
            raise ValueError(f"cannot read the numbers of {m.group(0).strip()!r} in {text!r}") from None
        rest = rest[m.end():].strip()
    if fields.get("even") and base != "int":
        raise ValueError(f"'even' goes with int, in {text!r}")
    return Spec(base=base, bounds=tuple(bounds), **fields)


# ---- declarations -------------------------------------------------------------------------------
@dataclass
class Parameter:
    name: str
    default: object
    spec: Spec
    help: str

    @property
    def type(self) -> str:
        return str(self.spec)


def declared_parameters(path: Path) -> dict[str, Parameter]:
    """The parameters cell of a notebook: name -> default, spec and meaning (`name = default  # spec: meaning`).

    Read with ast and tokenize (papermill's own parser drops a parameter whose comment holds '=').
    Every parameter must declare a spec its default satisfies.
    """
    import json  # the notebook's JSON as it is: nbformat costs ~2 s of imports (jsonschema) on every --check

    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path.name} is not a readable notebook ({exc})") from None
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
             and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path.name} must have exactly one code cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    source = "".join(source) if isinstance(source, list) else source
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            continue
        name = targets[0].id
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParameterError(f"{path.name}: parameter {name} must have a literal default") from exc
        comment = comments.get(node.end_lineno, "")
        spec_text, colon, meaning = comment.partition(":")
        where = f"{path.name}, parameters cell line {node.end_lineno}: {name}"
        if not colon:
            raise ParameterError(f"{where}: declare its valid values before a colon, e.g. "
                                 f"`{name} = {default!r}  # int >= 1: what it means`")
        try:
            spec = parse_spec(spec_text)
            spec.check(default)
        except ValueError as exc:
            raise ParameterError(f"{where}: {exc}" if "got" not in str(exc)
                                 else f"{where}: the default does not fit `{spec_text.strip()}` ({exc})") from None
        out[name] = Parameter(name, default, spec, meaning.strip())
    return out


# ---- YAML: files and --set values ---------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """YAML as people write it: 1e-3 is a float (YAML 1.2), and a key given twice is an error."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: SafeLoader says so itself
                pass
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def yaml_value(text: str):
    """One YAML value (a --set value): 3, 0.5, 1e-3, true, [1, 2], {a: 1} or text."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        line, column, problem = _yaml_problem(exc)
        where = f"line {line}, column {column}: " if line else ""
        raise ParameterError(f"cannot read {text!r} as a value: {where}{problem}") from None


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, int | None, str]:
    """(line, column, problem) of a YAML error, lines and columns from 1 (None when PyYAML gives no mark)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return (mark.line + 1, mark.column + 1, problem) if mark else (None, None, problem)


def read_params_file(path: Path) -> tuple[dict, dict[str, int]]:
    """A YAML parameter set: (name -> value, name -> line). One-line ParameterError with file:line:column."""
    from copystudy.common.data import NotUTF8, decode_utf8

    try:
        text = decode_utf8(path.read_bytes())
    except NotUTF8 as exc:
        raise ParameterError(f"{path}:{exc.line}:{exc.column}: not UTF-8 (byte 0x{exc.byte:02x}); "
                             "save the file as UTF-8") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()  # parsed once: the values, and the line of every key
        loaded = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        line, column, problem = _yaml_problem(exc)
        where = f"{path}:{line}:{column}" if line else str(path)
        raise ParameterError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if loaded is None or loaded == {}:
        raise ParameterError(f"{path}: the file is empty, it sets no parameters; write `name: value` lines, "
                             "or leave out --params to run the notebook's default set")
    if not isinstance(loaded, dict):
        raise ParameterError(f"{path}:1:1: expected `name: value` lines (a mapping), got a {type(loaded).__name__}")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return loaded, lines
