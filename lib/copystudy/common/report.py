"""What a notebook writes into its run folder (the working directory the runner gives it).

Results: `save_metrics` (metrics.json), `save_figure` (figures/), `save_table` (tables/). Provenance
and run facts go to two side files that the runner moves into manifest.json when the notebook ends:
`record_input` hashes each input data set into inputs.json, and `save_timings` puts wall-clock
seconds and cache hits into timings.json, so metrics.json stays the same from one run to the next.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

INPUTS_FILE = "inputs.json"
TIMINGS_FILE = "timings.json"


def run_path(*parts: str) -> Path:
    """A path inside the run folder; its parent folders are created."""
    path = Path.cwd().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str) -> Path:
    """Save a matplotlib figure as figures/<name>.png (for reading) and .pdf (for papers)."""
    png = run_path("figures", f"{name}.png")
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(png.with_suffix(".pdf"), bbox_inches="tight")
    return png


def save_table(df, name: str, index: bool = False) -> Path:
    """Save a pandas DataFrame as tables/<name>.csv and a Markdown copy tables/<name>.md."""
    csv = run_path("tables", f"{name}.csv")
    df.to_csv(csv, index=index)
    csv.with_suffix(".md").write_text(df.to_markdown(index=index, floatfmt=".4g") + "\n")
    return csv


def to_jsonable(value):
    """Numpy scalars and arrays, paths and tuples to plain JSON types (dict keys become strings)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _merge_json(path: Path, new: dict) -> Path:
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(to_jsonable(new))
    path.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    return path


def save_metrics(metrics: dict) -> Path:
    """Merge headline numbers into metrics.json (flat keys; a mapping may be a nested dict).

    Results only: two runs with the same parameters write the same bytes. Timings go to `save_timings`."""
    return _merge_json(run_path("metrics.json"), metrics)


def save_timings(timings: dict) -> Path:
    """Merge wall-clock seconds into the run's timings; the runner moves them into manifest.json."""
    return _merge_json(run_path(TIMINGS_FILE), timings)


def sha256(data) -> str:
    """Hash of bytes, str, a numpy array (dtype, shape and contents) or a dict/list of those."""
    h = hashlib.sha256()
    if isinstance(data, dict):
        for key in sorted(data):
            h.update(str(key).encode())
            h.update(sha256(data[key]).encode())
    elif isinstance(data, (list, tuple)):
        for item in data:
            h.update(sha256(item).encode())
    elif isinstance(data, np.ndarray):
        h.update(str(data.dtype).encode() + str(data.shape).encode())
        h.update(np.ascontiguousarray(data).tobytes())
    elif isinstance(data, str):
        h.update(data.encode())
    else:
        h.update(bytes(data))
    return h.hexdigest()


def record_input(name: str, data) -> str:
    """Record the hash of an input data set; the runner copies it into manifest.json."""
    digest = sha256(data)
    _merge_json(run_path(INPUTS_FILE), {name: digest})
    return digest
