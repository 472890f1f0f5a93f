"""A rerun replaces only what the earlier run wrote: a user's files, folders and nested runs are carried over.

Known answer by construction: the runner's manifest lists the files the run wrote; everything else in the
folder was put there by the test (as a user would), and must come out of a rerun byte for byte. A runner
that deleted its folder and wrote a new one (what it did before) fails every test here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import one_line_error, run_cli
from copystudy.runner import ownership, runfolder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def cli(project):
    def _cli(*args, check=False, env=None):
        return run_cli(*args, cwd=project, env={"COPYSTUDY_ROOT": str(project), **(env or {})}, check=check)

    return _cli


# ---- what is the run's and what is the user's (no notebook runs) ---------------------------------------
def _run_folder(folder: Path, files: list[str] | None, extra: dict[str, bytes]) -> Path:
    """A run folder whose manifest lists `files` (None: a manifest from before the file list), plus `extra`."""
    manifest = {"created_by": "copystudy", "status": "ok"}
    if files is not None:
        manifest["files"] = files
    for rel in (files or ["executed.ipynb", "metrics.json", "figures/a.png", "figures/a.pdf", "tables/t.csv",
                          "models/lm/model.safetensors"]):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"ours")
    for rel, data in extra.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


USER = {"NOTES.md": b"my notes", "my_plots/a.png": b"plot", "figures/mine.png": b"my figure",
        "nested/manifest.json": b'{"created_by": "copystudy"}', "nested/metrics.json": b"{}"}


@pytest.mark.parametrize("files, foreign", [
    (["executed.ipynb", "metrics.json", "figures/a.png", "manifest.json"], ["NOTES.md", "figures/mine.png", "my_plots", "nested"]),
    (None, ["NOTES.md", "my_plots", "nested"]),  # before the file list, a figure in figures/ counts as the run's
], ids=["file list", "manifest before the file list"])
def test_foreign_entries_are_what_the_run_did_not_write(tmp_path, files, foreign):
    folder = _run_folder(tmp_path / "run", files, USER)
    assert ownership.foreign_entries(folder) == foreign


def test_replace_carries_the_users_files_into_the_new_run(tmp_path):
    old = _run_folder(tmp_path / "run", ["executed.ipynb", "figures/a.png", "manifest.json"], USER)
    (old / "link").symlink_to(tmp_path)  # a user's link is moved as a link, never followed
    new = _run_folder(tmp_path / "run.running", ["executed.ipynb", "figures/a.png", "manifest.json", "NOTES.md"], {})
    kept = runfolder.replace(new, old)
    assert sorted(kept) == ["NOTES.yours.md", "figures/mine.png", "link", "my_plots", "nested"]
    assert (old / "NOTES.yours.md").read_bytes() == b"my notes" and (old / "NOTES.md").read_bytes() == b"ours"
    assert all((old / rel).read_bytes() == data for rel, data in USER.items() if rel != "NOTES.md")
    assert (old / "link").is_symlink() and os.readlink(old / "link") == str(tmp_path)
    assert json.loads((old / "manifest.json").read_text())["kept"] == kept
    assert not (tmp_path / "run.running").exists()


def test_a_failed_folder_holding_user_files_is_left_in_place(tmp_path, capsys):
    failed = _run_folder(tmp_path / "run.failed", ["executed.ipynb", "manifest.json"], {"why.txt": b"my analysis"})
    runfolder.remove(failed)
    assert (failed / "why.txt").read_bytes() == b"my analysis"
    assert "why.txt" in capsys.readouterr().err
    (failed / "why.txt").unlink()
    runfolder.remove(failed)
    assert not failed.exists()


# ---- through the runner ---------------------------------------------------------------------------------
def test_a_rerun_keeps_a_users_file_folder_and_nested_run(cli, tmp_path):
    out, other = tmp_path / "run", tmp_path / "other"
    cli("run", "toy", "--quiet", "--out", str(out), check=True)
    cli("run", "toy", "--quiet", "--out", str(other), "--set", "n=2", check=True)
    first = json.loads((out / "manifest.json").read_text())
    assert set(first["files"]) == set(ownership.written_files(out)) and "executed.ipynb" in first["files"]
    (out / "NOTES.md").write_text("what I saw")
    (out / "my_plots").mkdir()
    (out / "my_plots" / "p.png").write_bytes(b"\x89PNG mine")
    (out / "figures" / "annotated.png").write_bytes(b"\x89PNG annotated")
    shutil.move(str(other), str(out / "n2"))  # a run the user filed inside this one
    users = {k: v for k, v in snapshot(out).items()
             if k in ("NOTES.md", "my_plots/p.png", "figures/annotated.png") or k.startswith("n2/")}
    for _ in range(2):  # carried over, and carried over again
        proc = cli("run", "toy", "--quiet", "--out", str(out), check=True)
        assert {k: v for k, v in snapshot(out).items() if k in users} == users, proc.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert sorted(manifest["kept"]) == ["NOTES.md", "figures/annotated.png", "my_plots", "n2"]
        assert manifest["started"] != first["started"] and "NOTES.md" not in manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "run"]  # no .running, .failed or .lock


def test_out_inside_a_run_folder_is_refused_in_one_line(cli, tmp_path):
    out = tmp_path / "run"
    cli("run", "toy", "--quiet", "--out", str(out), check=True)
    before = snapshot(out)
    for command in ("--check", "--quiet"):
        line = one_line_error(cli("run", "toy", command, "--out", str(out / "sub")))
        assert f"is inside the run folder {out}" in line and "give a folder outside it" in line
    assert snapshot(out) == before


def test_a_symlinked_out_is_resolved_to_the_folder_it_points_to(cli, tmp_path):
    """The link is the user's (it stays a link to the run); the run replaces the folder it points to."""
    out, link = tmp_path / "run", tmp_path / "latest"
    cli("run", "toy", "--quiet", "--out", str(out), check=True)
    link.symlink_to(out)
    checked = cli("run", "toy", "--check", "--out", str(link), check=True)
    assert f"--out {link} is a symbolic link; the run writes to the folder it points to, {out}" in checked.stderr
    proc = cli("run", "toy", "--quiet", "--out", str(link), check=True)
    assert proc.stderr.count("symbolic link") == 1 and "Traceback" not in proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(out)
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "project", "run"]
