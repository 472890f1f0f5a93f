"""The study's experiments: one package per notebook, `copystudy.experiments.<notebook name>`.

Every package has the same shape: `__init__.py` declares what the runner and the site need without
importing torch (`rules(values) -> problem or None`, `HEADLINES`); `steps` runs the experiment and
returns data; its summary's `summarize` makes metrics.json and `verdicts` the sentences the notebook
prints; `figures` draws. Nothing lists the experiments by hand: a notebook `notebooks/NN_<name>.ipynb`
finds its package by name. The package path is extended over sys.path (`pkgutil.extend_path`), so a
folder of yours holding `copystudy/experiments/<name>/` on PYTHONPATH adds an experiment without
touching this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__path__ = pkgutil.extend_path(__path__, __name__)


def declarations(name: str) -> ModuleType | None:
    """The package of notebook `name` (its rules and headlines), or None when the notebook has none."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{__name__}.{name}",):
            return None
        raise


def names() -> list[str]:
    """Every experiment package found, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def rules(name: str):
    """The notebook's rules across its parameters (a function of the values), or None."""
    module = declarations(name)
    return getattr(module, "rules", None) if module else None


def headlines(name: str) -> list[tuple[str, str, str]]:
    """The (metrics key, label, format) triples the site shows for notebook `name`."""
    module = declarations(name)
    return list(getattr(module, "HEADLINES", [])) if module else []
