"""`python -m copystudy compress --run RUN_DIR FILE`: compress any file with the LM a run trained.

Without -o it measures: the bytes in, the model's own size (parameters x 16 bits), the range-coded size,
every classical baseline's size on the same chunks (each chunk charged its own stream, the container
once: `baselines`, "streams" accounting), and whether decoding gave the file back exactly.
With `-o FILE.lmz` it writes a file that `decompress` turns back into the original on any machine
(`lmz_cli`, `compression.lmz`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

MODEL_SUBDIR = Path("models") / "lm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR",
                        help="a run folder of lm_compression (holds models/lm/), e.g. results/lm_compression/default")
    parser.add_argument("file", help="the file to compress")
    parser.add_argument("-o", "--output", metavar="FILE.lmz",
                        help="write the compressed file here (decodable with `decompress` on any machine); "
                             "without -o: measure rates against the classical compressors")
    parser.add_argument("--force", action="store_true", help="with -o: replace the output if it exists")
    parser.add_argument("--verify", action="store_true", help="with -o: decode again before writing")
    parser.add_argument("--chunk-size", type=int, default=2048,
                        help="bytes per independently coded chunk (default 2048); 0 for one unchunked stream")
    parser.add_argument("--coder", choices=("float", "integer"), default="float",
                        help="measuring: the study's float32 coder (default) or the machine-independent integer "
                             "coder that -o writes with")
    parser.add_argument("--no-verify", action="store_true", help="measuring: skip decoding (the round trip check)")
    parser.add_argument("--json", action="store_true", help="measuring: print one JSON object instead of a table")


def compress_file(run_dir: str | Path, path: str | Path, chunk_size: int | None = 2048, verify: bool = True,
                  show_progress: bool = False, coder: str = "float") -> dict:
    """Compress a file with the run's LM and with every baseline; the summary as a dict (non-finite
    numbers, e.g. the rates of an empty file, are None)."""
    from copystudy.compression import baselines, rates

    lm = load_model(run_dir)
    model_dir = Path(run_dir) / MODEL_SUBDIR
    data = Path(path).read_bytes()
    info = rates.lm_code(lm, data, chunk_size, verify=verify, show_progress=show_progress,
                         integer=coder == "integer")
    bar = None
    if show_progress:
        from copystudy.models.training import progress

        bar = progress
    sizes = baselines.sizes(rates.lm_chunks(lm, data, chunk_size), verify=verify, accounting="streams", progress=bar)
    n = len(data)
    return strict({
        "file": str(path), "model": str(model_dir), "chunk_size": chunk_size, "bytes_in": n, "coder": coder,
        "model_name": lm.name, "n_params": lm.n_params, "model_bits": 16 * lm.n_params,
        "coded_bytes": info["coded_bytes"], "ideal_bytes": info["quantised_bits"] / 8,
        "model_ideal_bytes": info["ideal_bits"] / 8, "coded_bits_overhead_pct": info["coder_overhead_pct"],
        "raw_rate": rates.raw_rate(info["coded_bytes"], n),
        "adjusted_rate": rates.adjusted_rate(info["coded_bytes"], n, lm.n_params),
        "roundtrip_exact": info["roundtrip_exact"],
        "baselines": {name: {"bytes": size, "rate": rates.raw_rate(size, n)} for name, size in sizes.items()},
        "baseline_accounting": "streams",
        "seconds": info["encode_seconds"] + info["decode_seconds"],
        "encode_seconds": info["encode_seconds"], "decode_seconds": info["decode_seconds"] if verify else None,
        "coder_processes": info["coder_processes"],
    })


def strict(value):
    """value with every NaN or infinity replaced by None, so that strict JSON parsers read it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


class ModelError(ValueError):
    """The run folder holds no model that loads."""


def load_model(run_dir: str | Path):
    """The LM a run of lm_compression saved; ModelError (one line) if it is missing, corrupt or truncated."""
    from copystudy.models.causal_lm import CausalLM

    model_dir = Path(run_dir) / MODEL_SUBDIR
    if not Path(run_dir).is_dir():
        raise ModelError(f"--run {run_dir} is not a folder; run `python -m copystudy run lm_compression` first, "
                         "or pass a run folder of lm_compression")
    if not model_dir.is_dir():
        raise ModelError(f"--run {run_dir} holds no {MODEL_SUBDIR}/: is it a run of lm_compression?")
    try:
        return CausalLM.load(model_dir)
    except Exception as exc:  # safetensors, json, torch and transformers each raise their own error here
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"the model in {model_dir} cannot be loaded, its files are missing, corrupt or truncated "
                         f"({type(exc).__name__}: {reason}); run lm_compression again to recreate it") from None


def _pct(rate) -> str:
    return f"{100 * rate:7.2f} %" if rate is not None else "      - "


def _speed(n: int, seconds) -> str:
    return f"{n / 1e3 / seconds:,.0f} KB/s" if seconds else "-"


def main(args: argparse.Namespace) -> int:
    if args.chunk_size < 0:
        print(f"error: --chunk-size must be >= 0 (0: unchunked), got {args.chunk_size}", file=sys.stderr)
        return 2
    from copystudy.tools import lmz_cli

    if args.output:
        return lmz_cli.run(lmz_cli.compress_to, args)
    path = Path(args.file)
    try:
        lmz_cli.check_readable(path)
    except lmz_cli.Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        t0 = time.time()
        result = compress_file(args.run, path, args.chunk_size or None, verify=not args.no_verify,
                               show_progress=True, coder=args.coder)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return 0 if result["roundtrip_exact"] is not False else 1
    from copystudy.compression import baselines, rates

    n = result["bytes_in"]
    print(f"file            {result['file']}  ({n:,} bytes in, {rates.chunking_label(result['chunk_size'])})")
    print(f"model           {result['model']}  ({result['n_params']:,} params = {result['model_bits']:,} bits "
          f"= {result['model_bits'] // 8:,} bytes in float16)")
    print(f"{'compressor':<20}{'bytes':>12}{'rate':>11}")
    overhead = result["coded_bits_overhead_pct"]
    print(f"{result['model_name'] + ' (' + result['coder'] + ')':<20}{result['coded_bytes']:>12,}"
          f"{_pct(result['raw_rate']):>11}   (ideal {result['ideal_bytes']:,.0f} bytes with the coder's probabilities"
          f"{'' if overhead is None else f', {overhead:+.3f} %'}; with weights {_pct(result['adjusted_rate']).strip()})")
    for name, b in result["baselines"].items():
        print(f"{baselines.get(name).label:<20}{b['bytes']:>12,}{_pct(b['rate']):>11}")
    exact = result["roundtrip_exact"]
    speed = f"encode {_speed(n, result['encode_seconds'])}"
    if result["decode_seconds"]:
        speed += f", decode {_speed(n, result['decode_seconds'])}"
    print(f"round trip      {'exact' if exact else ('NOT exact' if exact is False else 'not checked')}"
          f"  ({time.time() - t0:.1f} s; LM {speed} in {result['coder_processes']} process"
          f"{'es' * (result['coder_processes'] > 1)}; classical: each chunk its own stream, the container once)")
    return 0 if exact is not False else 1
