"""Which files of a run folder the run wrote, and which are the user's.

A run names in its manifest (`files`) every file it wrote, relative to its folder. Before a rerun
replaces the folder, everything else there (a NOTES.md, a my_plots/ folder, a run moved inside it) is
the user's: it is carried over unchanged into the new run folder and named in the new manifest
(`kept`), so a rerun, `make study` included, never deletes what a user added to a run folder. A
user's file whose path the new run also wrote is kept beside it as `<name>.yours<suffix>`.

Manifests written before the file list existed are read by what a run writes (`LEGACY_OUTPUTS`);
anything else in such a folder is the user's.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

# what a run folder held before manifests listed their files (models/: whatever a notebook saved there)
LEGACY_OUTPUTS = ("executed.ipynb", "params.yaml", "manifest.json", "metrics.json", "figures/*.png", "figures/*.pdf",
                  "tables/*.csv", "tables/*.md", "models/*",
                  ".copystudy-run", "inputs.json", "timings.json")  # and what a killed run's folder keeps
LEGACY_FOLDERS = ("figures", "tables", "models")


def written_files(folder: Path) -> list[str]:
    """Every file (and symbolic link) under `folder`, as sorted paths relative to it ('figures/a.png')."""
    folder = Path(folder)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        out += [(here / f).relative_to(folder).as_posix() for f in filenames]
        out += [(here / d).relative_to(folder).as_posix() for d in dirnames if (here / d).is_symlink()]
    return sorted(out)


def _manifest_files(folder: Path) -> list[str] | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else None


def foreign_entries(folder: Path) -> list[str]:
    """The topmost paths in `folder` that its run did not write, sorted: a file, or a whole folder when
    nothing the run wrote is inside it (a user's my_plots/, a run inside this one)."""
    folder = Path(folder)
    listed = _manifest_files(folder)
    if listed is None:
        def ours(rel: str) -> bool:
            return any(fnmatch.fnmatchcase(rel, p) for p in LEGACY_OUTPUTS)

        def holds_ours(rel: str) -> bool:
            return rel in LEGACY_FOLDERS or rel.startswith("models/")
    else:
        files = set(listed)
        folders = {f.rsplit("/", i)[0] for f in files for i in range(1, f.count("/") + 1)}

        def ours(rel: str) -> bool:
            return rel in files

        def holds_ours(rel: str) -> bool:
            return rel in folders

    found = []

    def walk(here: Path) -> None:
        for entry in sorted(here.iterdir()):
            rel = entry.relative_to(folder).as_posix()
            if entry.is_dir() and not entry.is_symlink():
                if holds_ours(rel):
                    walk(entry)
                elif not ours(rel):
                    found.append(rel)
            elif not ours(rel):
                found.append(rel)

    if folder.is_dir():
        walk(folder)
    return found


def _free_name(path: Path) -> Path:
    """`path`, or `<stem>.yours<suffix>` (then .yours-2, ...) beside it when the new run wrote that name."""
    if not os.path.lexists(path):
        return path
    stem, suffix = (path.stem, path.suffix) if path.is_file() or not path.exists() else (path.name, "")
    for i in range(1, 1000):
        candidate = path.with_name(f"{stem}.yours{'' if i == 1 else f'-{i}'}{suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"no free name for {path}")


def carry_over(old: Path, new: Path) -> list[str]:
    """Move every foreign entry of the earlier run folder `old` into the new run folder `new`, at the
    same relative path (or a free name beside it); returns their paths relative to `new`."""
    kept = []
    for rel in foreign_entries(old):
        target = _free_name(new / rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # the new run wrote a file where the user's folder was
            target = _free_name(new / rel.replace("/", "_"))
        os.rename(old / rel, target)
        kept.append(target.relative_to(new).as_posix())
    return kept
