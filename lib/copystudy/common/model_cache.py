"""A content-addressed store of trained models: train a model once, load it every later time.

A model lives under cache_dir/<key>/ (saved by the model's own `save`, plus meta.json), where the key
hashes everything that determines it: its training data (in a canonical order, so the same works
reached by different owner splits give the same model), its settings, its seed, and the declared
version of the recipe that trained it. Editing code that does not change what a recipe trains (a
docstring, a refactor) leaves the keys alone; a change that does bumps the recipe's version. An
interrupted run resumes: finished models are loaded, the rest are trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[3]


def cache_dir(path: str | Path | None = None) -> Path:
    """The model cache: `path` if given, else $COPYSTUDY_CACHE, else <repo>/cache (git-ignored)."""
    chosen = path or os.environ.get("COPYSTUDY_CACHE") or REPO_ROOT / "cache"
    chosen = Path(chosen).expanduser()
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def fingerprint(*parts) -> str:
    """sha256 over numpy arrays (dtype, shape, bytes) and JSON-able values, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype == object:  # prompts
            h.update(json.dumps([str(v) for v in part.reshape(-1)]).encode())
        elif isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"array{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:24]


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices sorting works by the hash of (image, label): a data set's order no longer depends on
    how it was assembled from owners."""
    def label_bytes(lab):  # a conditioning id, or a prompt
        return str(lab).encode() if isinstance(lab, str) else int(lab).to_bytes(8, "little")

    keys = [hashlib.sha256(np.ascontiguousarray(im).tobytes() + label_bytes(lab)).hexdigest()
            for im, lab in zip(images, labels)]
    return np.argsort(np.array(keys), kind="stable")


def load_or_train(key: str, cache: Path, make: Callable[[], tuple[object, dict]], kind: str,
                  load: Callable[[Path], object]):
    """Load cache/<key> with load(folder) if complete, else make() -> (model, meta) and save it
    atomically (a crashed or repeated task finds either nothing or a whole model). Returns
    (model, meta, trained)."""
    target = Path(cache) / key
    if (target / "meta.json").exists():
        return load(target), json.loads((target / "meta.json").read_text()), False
    model, meta = make()
    tmp = Path(cache) / f".{key}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "meta.json").write_text(json.dumps({"kind": kind, **meta}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return model, meta, True
