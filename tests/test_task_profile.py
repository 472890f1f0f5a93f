"""The study's profile: schedules with known makespans, and a task log written by real tasks."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from copystudy.common import parallel
from copystudy.common.task_profile import by_kind, makespan, profile, stages, union_length


def test_makespan_of_known_schedules():
    # Graham's example: longest first gives 3+2+2 | 3+2 = 7 where the best schedule (3+3 | 2+2+2) takes 6
    assert makespan([3, 3, 2, 2, 2], 2) == 7
    assert makespan([5, 1, 1, 1], 2) == 5
    assert makespan([1] * 8, 4) == 2
    assert makespan([4, 2], 16) == 4  # more workers than tasks: the longest task
    assert makespan([2, 3, 4], 1) == 9  # one worker: the sum
    with pytest.raises(ValueError):
        makespan([1], 0)


def test_union_of_overlapping_windows():
    assert union_length([(0, 2), (1, 3), (5, 6)]) == 4
    assert union_length([]) == 0


def test_profile_work_span_and_prediction():
    rows = [("a", "fit 2 models", 0, "w0", 10.0, 14.0), ("a", "fit 2 models", 1, "w1", 10.0, 12.0),
            ("b", "score", 0, "w0", 20.0, 21.0)]
    tasks = pd.DataFrame(rows, columns=parallel.TASK_LOG_FIELDS)
    p = profile(tasks, wall_seconds=30.0, workers=(1, 2))
    assert p["serial_seconds"] == 25.0  # 30 s minus the stages' windows (4 s and 1 s)
    assert p["work_seconds"] == 32.0 and p["span_seconds"] == 30.0
    assert p["predicted_seconds"] == {1: 32.0, 2: 30.0}
    assert p["idle_worker_seconds"] == 2.0  # w1 waited 2 s for w0 in stage a
    assert stages(tasks)["workers"].tolist() == [2, 1]
    assert by_kind(tasks)["kind"].tolist() == ["fit N models", "score"]


def test_map_tasks_writes_one_row_per_task(tmp_path, monkeypatch):
    log = tmp_path / "tasks.csv"
    monkeypatch.setenv(parallel.TASK_LOG_ENV, str(log))
    assert parallel.map_tasks(abs, [-1, -2, 3], desc="abs", progress_bar=False) == [1, 2, 3]
    rows = list(csv.DictReader(log.open()))
    assert [r["index"] for r in rows] == ["0", "1", "2"] and {r["desc"] for r in rows} == {"abs"}
    assert all(float(r["end"]) >= float(r["start"]) and r["worker"] == "kernel" for r in rows)


def test_no_log_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(parallel.TASK_LOG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    parallel.map_tasks(abs, [-1], progress_bar=False)
    assert list(tmp_path.iterdir()) == []


def test_cluster_tasks_are_logged_with_their_worker(tmp_path, monkeypatch):
    log = tmp_path / "tasks.csv"
    monkeypatch.setenv(parallel.TASK_LOG_ENV, str(log))
    with parallel.executor(workers=2):
        assert parallel.map_tasks(abs, [-1, -2, -3, -4], desc="abs", progress_bar=False) == [1, 2, 3, 4]
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 4 and all(r["worker"] != "kernel" for r in rows)
