"""One configuration of the cross-configuration test (test_lmz.py), run in its own process:
python lmz_probe.py RUN_DIR TEXT REFERENCE.lmz BACKEND PROCESSES, with OPENBLAS_CORETYPE and the thread
variables set by the caller. Prints one JSON line: the BLAS kernel in use, SHA-256 of the integer and
of the float predictor's rows, SHA-256 of the .lmz file this configuration writes, and whether it
decodes the reference file (written under another configuration) to the text."""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info


def rows_sha(predictor, streams: np.ndarray) -> str:
    """The predictor's rows over the streams (not through the coder, which pins BLAS to one thread)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(predictor.start(len(streams))).tobytes())
    for t in range(streams.shape[1] - 1):
        h.update(np.ascontiguousarray(predictor.update(streams[:, t])).tobytes())
    return h.hexdigest()


def main(run_dir: str, text_file: str, reference: str, backend: str, processes: str) -> None:
    import torch

    from copystudy.compression import fixed_point, integer_lm, lmz, predictors
    from copystudy.tools.compress_cli import load_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lm = load_model(run_dir)
    model = integer_lm.IntegerGPT2.from_lm(lm)
    text = Path(text_file).read_bytes()
    streams = np.frombuffer(text[:4 * 200], dtype=np.uint8).reshape(4, 200).astype(np.int64)
    ops = fixed_point.TorchOps() if backend == "torch" else fixed_point.NUMPY
    blob, _ = lmz.encode(text, model, 256, int(processes), backend=backend)
    decoded = lmz.decode(Path(reference).read_bytes(), model, int(processes), backend=backend)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    print(json.dumps({
        "kernel": blas[0].get("architecture") if blas else None, "threads": blas[0]["num_threads"] if blas else None,
        "integer_rows": rows_sha(integer_lm.IntegerPredictor(model, ops), streams),
        "float_rows": rows_sha(predictors.LMPredictor(lm), streams),
        "lmz": hashlib.sha256(blob).hexdigest(), "decodes": decoded == text}))


if __name__ == "__main__":
    main(*sys.argv[1:])
