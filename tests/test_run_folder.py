"""Nothing lost, ever: the run folder, its working folders and its lock.

Every refusal here happens before the kernel starts, in one line, and leaves the user's files as they were.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import one_line_error, run_cli
from copystudy.runner import runfolder


@pytest.fixture
def cli(project):
    """cli(*args, check=False, env={}) runs `python -m copystudy ARGS` in the toy project."""
    def _cli(*args, check=False, env=None, cwd=project):
        return run_cli(*args, cwd=cwd, env={"COPYSTUDY_ROOT": str(project), **(env or {})}, check=check)

    return _cli


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_on_a_user_folder_is_refused_and_its_files_kept(cli, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    (thesis / "figures").mkdir()
    (thesis / "figures" / "a.png").write_bytes(b"\x89PNG")
    before = snapshot(thesis)
    line = one_line_error(cli("run", "toy", "--quiet", "--out", str(thesis)))
    assert str(thesis) in line and "not a copystudy run" in line and "give a new or empty folder" in line
    assert snapshot(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "thesis"]  # no .running, .lock or .failed


def test_out_on_the_current_folder_or_a_folder_above_it_is_refused(cli, tmp_path):
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    for out, cwd in ((".", work / "inner"), (str(work), work / "inner"), ("..", work / "inner")):
        line = one_line_error(cli("run", "toy", "--quiet", "--out", out, cwd=cwd))
        assert "give a new folder" in line or "not a copystudy run" in line
    assert sorted(p.name for p in work.iterdir()) == ["inner"]


@pytest.mark.notebook
def test_an_empty_folder_is_a_valid_out(cli, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    cli("run", "toy", "--quiet", "--out", str(out), check=True)
    assert (out / "metrics.json").is_file()


def test_out_on_a_file_or_an_unwritable_place_is_refused_before_running(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    line = one_line_error(cli("run", "toy", "--quiet", "--out", str(notes)))
    assert "is a file, not a folder" in line and notes.read_text() == "keep me"
    line = one_line_error(cli("run", "toy", "--quiet", "--out", str(notes / "run")))
    assert "cannot write" in line
    line = one_line_error(cli("run", "toy", "--quiet", "--out", "/proc/copystudy-test-run"))
    assert "cannot write" in line
    assert "cannot write" in one_line_error(cli("run", "toy", "--check", "--out", "/proc/copystudy-test-run"))
    assert not list(tmp_path.glob("notes.txt.*"))


@pytest.mark.parametrize("suffix", [".running", ".failed"])
def test_working_folders_that_are_not_ours_are_refused(cli, tmp_path, suffix):
    out = tmp_path / "run"
    foreign = tmp_path / f"run{suffix}"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    line = one_line_error(cli("run", "toy", "--quiet", "--out", str(out)))
    assert str(foreign) in line and "not copystudy's" in line
    assert (foreign / "data.csv").read_text() == "1,2" and not out.exists()


@pytest.mark.notebook
@pytest.mark.slow
def test_our_failed_folder_is_removed_by_the_next_good_run(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("run", "toy", "--quiet", "--out", str(out), "--set", "fail=true").returncode == 1
    assert (tmp_path / "run.failed" / "manifest.json").is_file()
    # the failed run had other parameters; a good run with them replaces its own .failed
    cli("run", "toy", "--quiet", "--out", str(out), "--set", "fail=false", check=True)
    assert not (tmp_path / "run.failed").exists() and (out / "metrics.json").is_file()


def _hold_lock(path: Path, info: dict):
    """A process that holds the flock on path, as a live run does; returns it once it holds the lock."""
    code = ("import fcntl, json, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"os.write(fd, json.dumps({info!r}).encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_lock_refuses_a_second_run_at_once(cli, tmp_path):
    out = tmp_path / "run"
    holder = _hold_lock(tmp_path / "run.lock", {"pid": 4242, "notebook": "toy", "started": "2026-01-02T03:04:05+00:00",
                                                 "host": "box"})
    try:
        t0 = time.perf_counter()
        line = one_line_error(cli("run", "toy", "--quiet", "--out", str(out)))
        assert time.perf_counter() - t0 < 30  # refused up front, not after a run
        assert "being written by run pid 4242" in line and "2026-01-02T03:04:05" in line
        line = one_line_error(cli("run", "toy", "--check", "--out", str(out)))  # --check sees it too
        assert "pid 4242" in line
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()


@pytest.mark.notebook
def test_a_lock_left_by_a_dead_process_is_taken_over(cli, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    (tmp_path / "run.lock").write_text(json.dumps({"pid": dead.pid, "notebook": "toy", "started": "earlier"}))
    proc = cli("run", "toy", "--quiet", "--out", str(out), check=True)
    assert f"took over the lock of run pid {dead.pid}" in proc.stderr
    assert (out / "metrics.json").is_file() and not (tmp_path / "run.lock").exists()


def _start_run(project, out: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "COPYSTUDY_PROGRESS": "0", "COPYSTUDY_ROOT": str(project), "TOY_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "copystudy", "run", "toy", "--quiet", "--out", str(out)],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_interruptible)


def _interruptible() -> None:
    """SIGINT at its default in the run, as in a terminal: a test suite started in the background of a
    non-interactive shell inherits SIGINT ignored, and the run would then never see the simulated Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_sleep_cell(out: Path, timeout: float = 120) -> None:
    """Until papermill has saved the notebook with the sleeping cell started (and a moment more)."""
    executed = out.with_name(out.name + ".running") / "executed.ipynb"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            cells = json.loads(executed.read_text())["cells"]
            if any("TOY_SLEEP" in "".join(c["source"]) and c["metadata"].get("papermill", {}).get("start_time")
                   for c in cells):
                time.sleep(1.0)
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("the run never reached its sleeping cell")


@pytest.mark.notebook
@pytest.mark.slow
def test_a_concurrent_run_into_the_same_folder_is_refused_and_the_first_finishes(cli, project, tmp_path):
    out = tmp_path / "run"
    first = _start_run(project, out, sleep=4)
    try:
        _wait_for_sleep_cell(out)
        line = one_line_error(cli("run", "toy", "--quiet", "--out", str(out)))
        assert f"being written by run pid {first.pid}" in line and "toy" in line
    finally:
        stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"


@pytest.fixture
def good_run(cli, tmp_path):
    out = tmp_path / "run"
    cli("run", "toy", "--quiet", "--out", str(out), check=True)
    return out, snapshot(out)


@pytest.mark.notebook
@pytest.mark.slow
def test_sigint_keeps_the_last_good_run_and_names_the_running_cell(project, good_run):
    """Ctrl-C in a terminal (SIGINT to the foreground process group): the one-line error, and no traceback
    from the kernel, whose reply to the interrupted cell finds its sockets closed (zmq's ZMQError)."""
    out, before = good_run
    proc = _start_run(project, out, sleep=120)
    _wait_for_sleep_cell(out)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "KeyboardInterrupt" in stderr and "cell 3 ('from copystudy.common import report')" in stderr
    assert "Traceback" not in stderr and "ZMQError" not in stderr, stderr
    assert [ln for ln in stderr.splitlines() if ln.startswith("error:")] == [stderr.splitlines()[-2]]
    assert snapshot(out) == before
    manifest = json.loads((out.with_name("run.failed") / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "TOY_SLEEP" in manifest["error"]["source"]
    assert manifest["error"]["cell_index"] >= 1


@pytest.mark.notebook
@pytest.mark.slow
def test_sigkill_keeps_the_last_good_run_and_the_next_run_names_the_cell(cli, project, good_run):
    out, before = good_run
    proc = _start_run(project, out, sleep=120)
    _wait_for_sleep_cell(out)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, as when a machine runs out of memory
    proc.wait()
    assert snapshot(out) == before and out.with_name("run.running").is_dir()
    again = cli("run", "toy", "--quiet", "--out", str(out), check=True)
    assert "was killed in cell" in again.stderr and "took over the lock" in again.stderr
    manifest = json.loads((out.with_name("run.failed") / "manifest.json").read_text())
    assert manifest["status"] == "killed" and "TOY_SLEEP" in manifest["error"]["source"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"


def test_check_validates_and_writes_nothing(cli, project, tmp_path):
    out = tmp_path / "run"
    proc = cli("run", "toy", "--check", "--out", str(out), check=True)
    assert "toy: ok" in proc.stdout and str(out) in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    one_line_error(cli("run", "toy", "--check", "--set", "n=0"))
    assert not (project / "results").exists()


@pytest.mark.notebook
@pytest.mark.slow
def test_two_runs_give_byte_identical_metrics(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("run", "toy", "--quiet", "--out", str(a), check=True)
    cli("run", "toy", "--quiet", "--out", str(b), check=True)
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()


def test_is_ours_knows_run_folders_and_working_folders(tmp_path):
    assert not runfolder.is_ours(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"something": "else"}))
    assert not runfolder.is_ours(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"created_by": "copystudy"}))
    assert runfolder.is_ours(tmp_path)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "manifest.json").write_text(json.dumps({"notebook": "n", "params_file": "p", "git": {}, "versions": {}}))
    assert runfolder.is_ours(legacy)


def test_a_killed_run_without_a_notebook_is_noted_as_such(tmp_path, capsys):
    """The note names the partial notebook only when there is one (a run killed while its kernel started has none)."""
    from copystudy.runner import execution

    out = tmp_path / "run"
    work = runfolder.start(out, {"pid": 1})
    (work / "manifest.json").write_text(json.dumps({"created_by": "copystudy", "status": "running"}))
    assert execution.salvage(out) == tmp_path / "run.failed"
    err = capsys.readouterr().err
    assert err.strip() == (f"note: an earlier run into {out} was killed before its notebook started; its manifest is "
                           f"in {tmp_path / 'run.failed'}")
    manifest = json.loads((tmp_path / "run.failed" / "manifest.json").read_text())
    assert manifest["status"] == "killed" and set(manifest["files"]) == {".copystudy-run", "manifest.json"}
