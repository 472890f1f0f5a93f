"""The speed benchmarks, measured in one run on this machine and written as one table.

    python benchmarks/run.py [--out benchmarks/results] [--quick]

(a) a training step of the default byte LM and UNet with 1 and 2 threads, alone and beside one busy
    single-threaded process (a pure-Python loop), and a smoke run alone and beside it;
(b) the royalty_shares smoke set in-process against `--workers 2` (each from an empty model cache);
(c) the LM coder's throughput each way against gzip, xz, zstd and brotli on the same 101 KB of text;
(d) the FLOP/s of a training step (torch's FlopCounterMode over the wall clock) as a fraction of this
    machine's fp32 matrix-product peak, measured here with 1 and 2 threads.

Run it on an otherwise idle machine: every ratio compares measurements of this one run. Writes
results.csv (part, measurement, condition, value, unit) and results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable


@contextlib.contextmanager
def busy_process():
    """One other CPU-bound single-threaded process for the duration of the block."""
    proc = subprocess.Popen([PY, "-c", "while True: pass"])
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def train_step(kind: str, threads: int, steps: int) -> dict:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    out = subprocess.run([PY, str(HERE / "train_step.py"), kind, "--threads", str(threads), "--steps", str(steps)],
                         capture_output=True, text=True, check=True, env={**_env(), **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict:
    return {**os.environ, "COPYSTUDY_PROGRESS": "0"}


def run_seconds(name: str, params: str, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([PY, "-m", "copystudy", "run", name, "--params", str(ROOT / "params" / name / f"{params}.yaml"),
                    "--out", str(out), "--quiet", *extra], check=True, capture_output=True, env=_env(), cwd=ROOT)
    return time.perf_counter() - t0


def part_a_d(rows: list, steps: int) -> None:
    peak = {t: json.loads(subprocess.run([PY, str(HERE / "train_step.py"), "peak", "--threads", str(t)],
                                         capture_output=True, text=True, check=True, env=_env()).stdout)["flops_per_second"]
            for t in (1, 2)}
    for t, f in peak.items():
        rows.append(("d", "fp32 matrix product 2048x2048", f"{t} thread{'s' * (t > 1)}", f / 1e9, "GFLOP/s"))
    for kind, label in (("lm", "byte LM 125K, batch 32x128"), ("unet", "UNet 16x16, batch 32")):
        alone = {}
        for threads in (1, 2):
            r = train_step(kind, threads, steps)
            alone[threads] = r["seconds_per_step"]
            rows.append(("a", f"train step, {label}", f"{threads} thread{'s' * (threads > 1)}, alone",
                         1e3 * r["seconds_per_step"], "ms"))
            gflops = r["flops_per_step"] / r["seconds_per_step"] / 1e9
            rows.append(("d", f"train step, {label}", f"{threads} thread{'s' * (threads > 1)}", gflops, "GFLOP/s"))
            rows.append(("d", f"train step, {label}", f"{threads} thread{'s' * (threads > 1)}, share of the "
                         f"{threads}-thread matmul peak", 100 * gflops * 1e9 / peak[threads], "%"))
        with busy_process():
            for threads in (1, 2):
                s = train_step(kind, threads, steps)["seconds_per_step"]
                rows.append(("a", f"train step, {label}", f"{threads} thread{'s' * (threads > 1)}, beside a busy process",
                             1e3 * s, "ms"))
                rows.append(("a", f"train step, {label}", f"{threads} thread{'s' * (threads > 1)}, busy / alone",
                             s / alone[threads], "x"))


def part_a_smoke(rows: list, tmp: Path) -> None:
    alone = run_seconds("lm_compression", "smoke", tmp / "smoke-alone")
    with busy_process():
        beside = run_seconds("lm_compression", "smoke", tmp / "smoke-busy")
    rows.append(("a", "lm_compression smoke run (default: 1 thread)", "alone", alone, "s"))
    rows.append(("a", "lm_compression smoke run (default: 1 thread)", "beside a busy process", beside, "s"))
    rows.append(("a", "lm_compression smoke run (default: 1 thread)", "busy / alone", beside / alone, "x"))


def part_b(rows: list, tmp: Path) -> None:
    """The smoke set as it is (seconds of work: start-up dominates), and with the default set's
    fine-tunes (150 steps of batch 32), where the coalition models are most of the work."""
    variants = {"royalty_shares smoke run, empty cache": [],
                "royalty_shares smoke run with 150-step fine-tunes, empty cache":
                    ["--set", "finetune_steps=150", "--set", "finetune_batch_size=32"]}
    for v, (what, sets) in enumerate(variants.items()):
        times, metrics = {}, {}
        for label, extra in (("in-process", []), ("--workers 2", ["--workers", "2"])):
            out = tmp / f"royalty-{v}-{len(extra)}"
            times[label] = run_seconds("royalty_shares", "smoke", out, "--set", f"cache_dir={out}-cache", *sets, *extra)
            metrics[label] = (out / "metrics.json").read_bytes()
            rows.append(("b", what, label, times[label], "s"))
        rows.append(("b", what, "--workers 2 / in-process", times["--workers 2"] / times["in-process"], "x"))
        rows.append(("b", what, "metrics.json identical", float(len(set(metrics.values())) == 1), "bool"))


def part_c(rows: list) -> None:
    from copystudy.compression import baselines, rates
    from copystudy.common import data
    from copystudy.tools.compress_cli import load_model

    lm = load_model(ROOT / "results" / "lm_compression" / "default")
    text = data.join_documents(data.text_corpus())[:101_000]
    for processes in (1, 2):
        info = rates.lm_code(lm, text, 2048, show_progress=False, processes=processes)
        assert info["roundtrip_exact"]
        cond = f"{processes} process{'es' * (processes > 1)}, 2048-byte chunks"
        rows.append(("c", "byte LM 125K (range coder) encode", cond, len(text) / 1e3 / info["encode_seconds"], "KB/s"))
        rows.append(("c", "byte LM 125K (range coder) decode", cond, len(text) / 1e3 / info["decode_seconds"], "KB/s"))
    pieces = rates.lm_chunks(lm, text, 2048)
    for name in baselines.COMPRESSORS:
        c = baselines.get(name)
        encode, decode = [], []
        for _ in range(5):  # milliseconds each: the median of 5
            t0 = time.perf_counter()
            packed = [c.compress(p) for p in pieces]
            t1 = time.perf_counter()
            unpacked = [c.decompress(p) for p in packed]
            encode.append(t1 - t0)
            decode.append(time.perf_counter() - t1)
            assert unpacked == pieces
        rows.append(("c", f"{c.label} encode", "2048-byte chunks", len(text) / 1e3 / statistics.median(encode), "KB/s"))
        rows.append(("c", f"{c.label} decode", "2048-byte chunks", len(text) / 1e3 / statistics.median(decode), "KB/s"))


def write(rows: list, out: Path) -> None:
    import pandas as pd

    from copystudy.common.parallel import usable_cores

    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=["part", "measurement", "condition", "value", "unit"])
    table["value"] = table["value"].round(3)
    table.to_csv(out / "results.csv", index=False)
    machine = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()
    head = (f"# Benchmarks\n\n`python benchmarks/run.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{machine}, {usable_cores()} cores. Parts: (a) threads, alone and beside a "
            f"busy process; (b) Dask workers; (c) coder throughput; (d) FLOP/s.\n\n")
    (out / "results.md").write_text(head + table.to_markdown(index=False) + "\n")
    print(table.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for results.csv and results.md")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    args = parser.parse_args()
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        part_a_d(rows, args.steps)
        part_a_smoke(rows, Path(tmp))
        part_b(rows, Path(tmp))
        part_c(rows)
    write(rows, Path(args.out))


if __name__ == "__main__":
    main()
