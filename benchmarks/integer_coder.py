"""The integer coder (.lmz files) beside the study's float32 coder, with the canonical run's model.

    python benchmarks/integer_coder.py [--out benchmarks/results]

(1) the rate of both coders on lm_compression's default held-out text, in 2048-byte chunks and as one
    stream (the integer coder's cost against the float coder's, issue 28's budget: 0.5 %);
(2) the throughput each way on the same 101 KB of text as benchmarks/run.py part (c) and on 1 MB, in
    1 and 2 processes: the float coder (rates.lm_code) and the .lmz file (lmz.encode / lmz.decode).

Run it on an otherwise idle machine (under `flock /work/cpu.lock` on a shared one). Writes
integer_coder.csv and integer_coder.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RUN = ROOT / "results" / "lm_compression" / "default"  # the canonical run: its model and its params.yaml


def rates_part(rows: list, lm, model) -> None:
    from copystudy.compression import rates
    from copystudy.experiments.lm_compression.steps import texts
    from copystudy.runner.params import read_params_file

    p = read_params_file(RUN / "params.yaml")[0]  # the split the model was trained and scored on
    held = texts(p["text_files"], p["heldout_fraction"], p["eval_bytes"], p["validation_fraction"],
                 seed=p["seed"])[0].heldout_text
    for chunk_size in (2048, None):
        label = rates.chunking_label(chunk_size)
        runs = {coder: rates.lm_code(lm, held, chunk_size, show_progress=False, integer=coder == "integer")
                for coder in ("float", "integer")}
        for coder, info in runs.items():
            assert info["roundtrip_exact"]
            rows.append(("rate", f"{coder} coder, held-out text ({len(held):,} bytes)", label,
                         info["coded_bytes"] / len(held), "bytes/byte"))
            rows.append(("rate", f"{coder} coder, ideal under its own probabilities", label,
                         info["quantised_bits"] / 8 / len(held), "bytes/byte"))
        rows.append(("rate", "integer / float coded size - 1", label,
                     100 * (runs["integer"]["coded_bytes"] / runs["float"]["coded_bytes"] - 1), "%"))


def speed_part(rows: list, lm, model) -> None:
    from copystudy.common import data
    from copystudy.compression import lmz, rates

    corpus = data.join_documents(data.text_corpus())
    for size in (101_000, 1_000_000):
        text = (corpus * (1 + size // len(corpus)))[:size]
        for processes in (1, 2):
            cond = f"{size // 1000} KB, 2048-byte chunks, {processes} process{'es' * (processes > 1)}"
            info = rates.lm_code(lm, text, 2048, show_progress=False, processes=processes)
            assert info["roundtrip_exact"]
            rows.append(("speed", "float coder encode", cond, len(text) / 1e3 / info["encode_seconds"], "KB/s"))
            rows.append(("speed", "float coder decode", cond, len(text) / 1e3 / info["decode_seconds"], "KB/s"))
            t0 = time.perf_counter()
            blob, _ = lmz.encode(text, model, 2048, processes)
            t1 = time.perf_counter()
            assert lmz.decode(blob, model, processes) == text
            t2 = time.perf_counter()
            rows.append(("speed", "integer coder (.lmz) encode", cond, len(text) / 1e3 / (t1 - t0), "KB/s"))
            rows.append(("speed", "integer coder (.lmz) decode", cond, len(text) / 1e3 / (t2 - t1), "KB/s"))
            rows.append(("speed", "integer coder (.lmz) file size", cond, len(blob) / len(text), "bytes/byte"))


def main() -> None:
    import pandas as pd

    from copystudy.compression.integer_lm import IntegerGPT2
    from copystudy.tools.compress_cli import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for integer_coder.csv and .md")
    parser.add_argument("--skip-rates", action="store_true", help="only the throughput")
    args = parser.parse_args()
    lm = load_model(RUN)
    model = IntegerGPT2.from_lm(lm)
    rows: list = []
    t0 = time.time()
    if not args.skip_rates:
        rates_part(rows, lm, model)
    speed_part(rows, lm, model)
    table = pd.DataFrame(rows, columns=["part", "measurement", "condition", "value", "unit"])
    table["value"] = table["value"].round(5)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "integer_coder.csv", index=False)
    head = (f"# The integer coder beside the float coder\n\n`python benchmarks/integer_coder.py`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.time() - t0:.0f} s; model: "
            f"results/lm_compression/default (program {model.program_sha256[:16]}).\n\n")
    (out / "integer_coder.md").write_text(head + table.to_markdown(index=False) + "\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
