"""Where a run's time goes, from its task log: work, span, idle workers, and the wall time on more workers.

A run's parallel parts are stages (one `map_tasks` or `submit_tasks` call each), every task a row of
the run's tasks.csv (stage, desc, index, worker, start, end; `copystudy.common.parallel`). Between
stages the notebook's own process works alone. From that:

- serial seconds: the run's wall time outside every stage's window (the kernel alone: data, scoring
  in the notebook's process, figures, start-up);
- work: serial seconds plus every task's seconds (the time on one worker with no overhead);
- span: serial seconds plus the longest task of each stage (the time on unlimited workers);
- the predicted wall time on k workers: serial seconds plus each stage's makespan on k workers when
  its tasks start longest first, each on the first free worker (the order `map_tasks` submits tasks
  in when it knows their cost; Graham's bound puts it within 4/3 of the best schedule).

Stages that overlap (a background batch running beside later stages) are counted one after another,
so a prediction for such a run errs long.
"""

from __future__ import annotations

import heapq

import pandas as pd


def makespan(durations, workers: int) -> float:
    """The finishing time of `durations` scheduled longest first, each on the first free of `workers`."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    free = [0.0] * min(workers, max(len(durations), 1))
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def union_length(intervals) -> float:
    """Total length covered by a set of (start, end) intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def stages(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per stage: desc, tasks, workers used, window (start, end, wall), busy seconds, longest task,
    and the seconds its workers sat idle inside the window."""
    t = tasks.assign(seconds=tasks["end"] - tasks["start"])
    g = t.groupby("stage", sort=False)
    out = g.agg(desc=("desc", "first"), tasks=("index", "size"), workers=("worker", "nunique"),
                start=("start", "min"), end=("end", "max"), busy=("seconds", "sum"), longest=("seconds", "max"))
    out["wall"] = out["end"] - out["start"]
    out["idle"] = out["wall"] * out["workers"] - out["busy"]
    return out.sort_values("start").reset_index()


def profile(tasks: pd.DataFrame, wall_seconds: float, workers=(1, 2, 4, 8, 16)) -> dict:
    """Serial seconds, work, span and the predicted wall time on each number of `workers` for one run."""
    st = stages(tasks) if len(tasks) else pd.DataFrame(columns=["start", "end", "busy", "longest", "idle"])
    in_stages = union_length(zip(st["start"], st["end"])) if len(st) else 0.0
    serial = max(wall_seconds - in_stages, 0.0)
    by_stage = [g["end"] - g["start"] for _, g in tasks.groupby("stage", sort=False)] if len(tasks) else []
    return {"wall_seconds": wall_seconds, "serial_seconds": serial, "task_seconds": float(st["busy"].sum()),
            "work_seconds": serial + float(st["busy"].sum()), "span_seconds": serial + float(st["longest"].sum()),
            "idle_worker_seconds": float(st["idle"].sum()), "stages": len(st),
            "predicted_seconds": {k: serial + sum(makespan(d.tolist(), k) for d in by_stage) for k in workers}}


def by_kind(tasks: pd.DataFrame) -> pd.DataFrame:
    """Seconds per kind of task (a stage's description without its counts), most first."""
    t = tasks.assign(seconds=tasks["end"] - tasks["start"],
                     kind=tasks["desc"].str.replace(r"\d+", "N", regex=True))
    return (t.groupby("kind").agg(tasks=("seconds", "size"), seconds=("seconds", "sum"), longest=("seconds", "max"))
            .sort_values("seconds", ascending=False).reset_index())
