"""Run folders: which folders a run may write, replace or delete, and the lock that keeps two runs apart.

A run of RUN_DIR works in RUN_DIR.running/, which becomes RUN_DIR/ when it succeeds and RUN_DIR.failed/
when it fails; RUN_DIR.lock holds the lock. The runner replaces a folder only when it is its own: a
run folder (manifest.json written by copystudy) or a working folder (our marker file inside). Even
then it deletes only what the earlier run wrote: anything a user added there is carried into the new
run folder (`copystudy.runner.ownership`). Any other folder of the user's is refused before the
notebook starts, never touched; so is a run folder inside another run's folder.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from copystudy.runner import ownership
from copystudy.runner.params import ParameterError

MARKER = ".copystudy-run"  # inside RUN_DIR.running/ and RUN_DIR.failed/: who made it
CREATED_BY = "copystudy"


class RunLocked(ParameterError):
    """Another live run writes the same run folder."""

    @classmethod
    def held_by(cls, run_dir: Path, holder: dict | None) -> "RunLocked":
        return cls(f"{run_dir} is being written by {holder_text(holder)}; wait for it to finish or stop it, "
                   "or give another --out")


def running(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".running")


def failed(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".failed")


def lock_file(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".lock")


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_ours(folder: Path) -> bool:
    """A folder this runner made: our marker inside, or a manifest.json that copystudy wrote."""
    if (folder / MARKER).is_file():
        return True
    manifest = read_json(folder / "manifest.json")
    if not isinstance(manifest, dict):
        return False
    # manifests before the created_by field had these keys
    return manifest.get("created_by") == CREATED_BY or {"notebook", "params_file", "git", "versions"} <= set(manifest)


def enclosing_run(run_dir: Path) -> Path | None:
    """The run folder (or working folder) of ours that holds `run_dir`, if any."""
    for parent in Path(run_dir).parents:
        if parent.is_dir() and is_ours(parent):
            return parent
    return None


def check_writable(run_dir: Path, protected: list[Path] = ()) -> None:
    """Refuse, before anything runs, a run folder this runner could not write or must not replace.

    Refused: an existing file; a folder with contents that is not a run folder of ours; a folder
    inside a run folder of ours; a RUN_DIR.running or RUN_DIR.failed that is not ours (or is a link);
    the current folder, the project or a folder holding them; a place where no folder can be created
    (tried by making and removing an empty folder there, so /proc or a read-only disk is found now).
    """
    run_dir = Path(run_dir)
    for keep in protected:
        keep = Path(keep).absolute()
        if run_dir == keep or run_dir in keep.parents:
            what = "is" if run_dir == keep else "contains"
            raise ParameterError(f"--out {run_dir} {what} the folder you run from or the project ({keep}), which a "
                                 f"run would replace; give a new folder, e.g. --out {run_dir / 'my-run'}")
    outer = enclosing_run(run_dir)
    if outer is not None:
        raise ParameterError(f"--out {run_dir} is inside the run folder {outer}, whose results it would mix with; "
                             f"give a folder outside it, e.g. --out {outer.parent / (outer.name + '-' + run_dir.name)}")
    if run_dir.exists() and not run_dir.is_dir():
        raise ParameterError(f"--out {run_dir} is a file, not a folder; give a new folder for the run")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_ours(run_dir):
        raise ParameterError(f"--out {run_dir} is a folder with files that is not a copystudy run (no manifest.json "
                             f"of ours), and a run replaces its folder; give a new or empty folder, e.g. "
                             f"--out {run_dir / 'my-run'}")
    lock = lock_file(run_dir)
    foreign = [f for f in (running(run_dir), failed(run_dir))
               if os.path.lexists(f) and (f.is_symlink() or not (f.is_dir() and is_ours(f)))]
    foreign += [lock] if os.path.lexists(lock) and (lock.is_symlink() or not lock.is_file()) else []
    if foreign:
        raise ParameterError(f"{foreign[0]} exists and is not copystudy's; the run would replace it. Move it "
                             "away or choose another --out")
    parent = run_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ParameterError(f"cannot write {run_dir}: {parent} is not a folder this user can write to")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".copystudy-probe-", dir=parent))
    except OSError as exc:
        raise ParameterError(f"cannot write {run_dir}: {parent} takes no new folders ({exc.strerror})") from None


def holder_text(info: dict | None) -> str:
    if not info:
        return "a run that has not yet said who it is"
    return f"run pid {info.get('pid')} ({info.get('notebook')}, started {info.get('started')} on {info.get('host')})"


@contextmanager
def locked(run_dir: Path, info: dict):
    """Hold RUN_DIR.lock for the block; RunLocked naming the holder if a live run holds it.

    The lock is an advisory lock (flock) on the file, which the kernel drops when its process dies, so
    a lock left by a killed run is taken over. Yields what the previous holder wrote (None if none).
    """
    path = lock_file(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"cannot write {run_dir}: {exc.strerror} ({path.parent})") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ParameterError(f"cannot write {run_dir}: {exc.strerror} ({path})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunLocked.held_by(run_dir, _holder(path)) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by the run that held it; lock the new one
    try:
        previous = os.read(fd, 1 << 16)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        try:
            previous = json.loads(previous) if previous else None
        except ValueError:
            previous = None
        yield previous
    finally:
        try:
            path.unlink()
        finally:
            os.close(fd)


def _holder(path: Path) -> dict | None:
    """What the live holder of a lock wrote about itself (it writes right after it takes the lock)."""
    for _ in range(20):
        holder = read_json(path)
        if holder:
            return holder
        time.sleep(0.05)
    return None


def lock_holder(run_dir: Path) -> dict | None:
    """Who holds RUN_DIR.lock now (its details, {} if it has not written them), or None when no live run does."""
    path = lock_file(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # no lock, or its holder just finished
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(path) or {}
    finally:
        os.close(fd)
    return None


def start(run_dir: Path, info: dict) -> Path:
    """A new RUN_DIR.running/ with our marker (a stale one was salvaged before, a foreign one refused by
    check_writable; one that appeared since is an error here, never overwritten)."""
    work = running(run_dir)
    try:
        work.mkdir(parents=True)
        (work / MARKER).write_text(json.dumps(info) + "\n")
    except OSError as exc:
        raise ParameterError(f"cannot write {work}: {exc.strerror}") from None
    return work


def replace(source: Path, target: Path) -> list[str]:
    """Move our folder `source` to `target`, replacing `target` only if it is ours (or empty).

    What the earlier run in `target` did not write (its manifest's file list) is the user's: it is
    moved into `source` first and named in source's manifest (`kept`), so only the earlier run's own
    files are deleted. Returns the paths kept, relative to the run folder."""
    kept = []
    if os.path.lexists(target):
        if target.is_symlink() or not target.is_dir() or not (is_ours(target) or not any(target.iterdir())):
            raise ParameterError(f"{target} is not copystudy's; the finished run stays in {source}")
        try:
            kept = ownership.carry_over(target, source)
        except OSError as exc:
            raise ParameterError(f"could not move {exc.filename} into the new run ({exc.strerror}); nothing was "
                                 f"deleted: the finished run is in {source}, with what was moved so far") from None
        if kept:
            _note_kept(source, kept)
        left = ownership.foreign_entries(target)
        if left:  # added while we moved the others: leave everything where it is
            raise ParameterError(f"{target / left[0]} appeared while the run finished; nothing was deleted, the "
                                 f"finished run stays in {source}")
        shutil.rmtree(target)
    source.rename(target)
    return kept


def _note_kept(folder: Path, kept: list[str]) -> None:
    manifest_path = folder / "manifest.json"
    manifest = read_json(manifest_path)
    if isinstance(manifest, dict):
        manifest["kept"] = kept
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def remove(folder: Path) -> None:
    """Delete a folder only if it is ours, and only if it holds nothing of the user's (then it stays)."""
    if folder.is_dir() and not folder.is_symlink() and is_ours(folder):
        left = ownership.foreign_entries(folder)
        if left:
            import sys

            print(f"note: {folder} holds files that are not the run's ({left[0]}); it is left in place", file=sys.stderr)
            return
        shutil.rmtree(folder)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
