"""A profile of the study from its runs' task logs: where the time goes, and the wall time on more cores.

    python benchmarks/task_profile.py [--run default] [--out benchmarks/results] [--check RUN_DIR ...]

For every results/<notebook>/<run>/ with a tasks.csv (written by the runner, one row per parallel
task): the notebook's wall time, its serial seconds (the kernel alone), its work and span, the
seconds its workers sat idle, the seconds per kind of task, and the predicted wall time on 1, 2, 4, 8
and 16 workers (`copystudy.common.task_profile`). The study's total is the sum over notebooks, which
`run all` runs one after another. --check RUN_DIR compares a run's measured wall time with the
prediction for its own worker count (the validation of the model on this machine). The one-thread
fp32 matrix-product peak is measured at the same time, so times from machines of different speed
can be compared (a time x peak / 108 GFLOP/s is the time at this project's reference speed).

Writes profile.md and profile.csv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from copystudy.common.task_profile import by_kind, profile

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
WORKERS = (1, 2, 4, 8, 16)
REFERENCE_GFLOPS = 108.0  # the one-thread peak of the machine the 30-minute goal is stated for


def peak_gflops() -> float:
    out = subprocess.run([sys.executable, str(HERE / "train_step.py"), "peak", "--threads", "1"], capture_output=True,
                         text=True, check=True, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                                     "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1]) / 1e9


def run_profile(folder: Path) -> tuple[dict, pd.DataFrame, int | None]:
    manifest = json.loads((folder / "manifest.json").read_text())
    tasks = pd.read_csv(folder / "tasks.csv") if (folder / "tasks.csv").exists() else pd.DataFrame(
        columns=["stage", "desc", "index", "worker", "start", "end"])
    workers = manifest.get("executor", {}).get("workers")
    return profile(tasks, float(manifest["wall_seconds"]), WORKERS), tasks, workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="default")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--check", nargs="*", default=[], help="run folders to compare with their prediction")
    args = parser.parse_args()
    folders = sorted((ROOT / "results").glob(f"*/{args.run}/manifest.json"))
    rows, kinds = [], []
    for manifest in folders:
        p, tasks, workers = run_profile(manifest.parent)
        name = manifest.parent.parent.name
        rows.append({"notebook": name, "measured_workers": workers, "wall_s": p["wall_seconds"],
                     "serial_s": p["serial_seconds"], "work_s": p["work_seconds"], "span_s": p["span_seconds"],
                     "idle_worker_s": p["idle_worker_seconds"],
                     **{f"predicted_{k}_workers_s": v for k, v in p["predicted_seconds"].items()}})
        if len(tasks):
            kinds.append(by_kind(tasks).assign(notebook=name))
    table = pd.DataFrame(rows)
    total = table.drop(columns=["notebook", "measured_workers"]).sum().to_dict()
    table = pd.concat([table, pd.DataFrame([{"notebook": "all", **total}])], ignore_index=True)
    checks = []
    for folder in map(Path, args.check):
        p, _, workers = run_profile(folder)
        k = workers or 1
        predicted = p["predicted_seconds"].get(k) or p["serial_seconds"]
        checks.append({"run": str(folder), "workers": k, "measured_s": p["wall_seconds"], "predicted_s": predicted,
                       "predicted_over_measured": predicted / p["wall_seconds"]})
    peak = peak_gflops()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.round(1).to_csv(out / "profile.csv", index=False)
    lines = [f"# Profile of the `{args.run}` runs", "",
             f"One-thread fp32 matrix-product peak measured now: {peak:.0f} GFLOP/s "
             f"(times x {peak / REFERENCE_GFLOPS:.2f} give the time at {REFERENCE_GFLOPS:.0f} GFLOP/s).", "",
             "## Per notebook (seconds)", "", table.round(1).to_markdown(index=False), ""]
    if kinds:
        lines += ["## Per kind of task (seconds of work)", "",
                  pd.concat(kinds)[["notebook", "kind", "tasks", "seconds", "longest"]].round(1).to_markdown(index=False),
                  ""]
    if checks:
        lines += ["## The prediction against measured runs", "", pd.DataFrame(checks).round(3).to_markdown(index=False), ""]
    (out / "profile.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
