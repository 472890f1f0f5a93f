"""The .lmz file and `compress -o` / `decompress`: exact round trips, refusals in one line before any work
(another model, damaged files, an existing output), and the same bytes under every BLAS kernel, thread
count, process count and array library this machine offers."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, one_line_error, run_cli

from copystudy.compression import coding, integer_lm, lmz
from copystudy.models.causal_lm import CausalLM
from copystudy.runner.cli import main as cli
from copystudy.tools.compress_cli import MODEL_SUBDIR

TEXT = ("class Stack:\n    def push(self, x):\n        self.items.append(x)\n\n" * 30).encode() + bytes(range(256))
SAMPLES = {"empty": b"", "one byte": b"\xff", "all 256": bytes(range(256)), "text": TEXT,
           "random": np.random.default_rng(0).integers(0, 256, 900, dtype=np.uint8).tobytes()}


def make_run(folder: Path, seed: int) -> Path:
    lm = CausalLM.from_config(n_layer=2, n_head=2, n_embd=32, context=32, seed=seed)
    lm.fit(TEXT, steps=20, batch_size=8, lr=3e-3, seed=seed, progress_bar=False)
    lm.save(folder / MODEL_SUBDIR)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return make_run(base / "a", 0), make_run(base / "b", 1)


@pytest.fixture(scope="module")
def model(runs):
    return integer_lm.IntegerGPT2.from_lm(CausalLM.load(runs[0] / MODEL_SUBDIR))


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("chunk_size", [0, 100, 2048])
def test_round_trip(model, name, chunk_size):
    data = SAMPLES[name]
    blob, coded = lmz.encode(data, model, chunk_size)
    assert lmz.decode(blob, model) == data
    assert len(blob) <= lmz.HEADER_BYTES + coded.coded_bytes + 2 * len(coded.streams)
    assert [len(c) for c in coding.chunks(data, chunk_size or None)] == lmz.chunk_lengths(len(data), chunk_size)


@pytest.mark.slow
def test_processes_and_libraries_do_not_change_the_file(model):
    """The same file from 1 or 2 worker processes, or torch; each decodes the others'."""
    one, _ = lmz.encode(TEXT, model, 100, processes=1)
    two, _ = lmz.encode(TEXT, model, 100, processes=2)
    assert one == two
    assert lmz.decode(one, model, processes=2) == TEXT
    pytest.importorskip("torch")
    assert lmz.encode(TEXT, model, 100, backend="torch")[0] == one
    assert lmz.decode(one, model, backend="torch") == TEXT


def test_another_model_is_refused_before_decoding(runs, model, monkeypatch):
    other = integer_lm.IntegerGPT2.from_lm(CausalLM.load(runs[1] / MODEL_SUBDIR))
    blob, _ = lmz.encode(TEXT, model, 100)
    monkeypatch.setattr(coding, "code_groups", lambda *a, **k: pytest.fail("decoding started"))
    with pytest.raises(lmz.ModelMismatch, match=f"compressed with model {model.model_sha256[:16]}"):
        lmz.decode(blob, other)


def damaged(blob: bytes) -> dict[str, bytes]:
    """Every way the tests damage a file, with the message each must give."""
    head = lmz.read_header(blob)
    wrong_sha = lmz.Header(**{**head.__dict__, "sha256": "00" * 32}).pack()
    return {"truncated": blob[:-3], "header only": blob[:lmz.HEADER_BYTES], "a few bytes": blob[:20],
            "payload bit": blob[:-5] + bytes([blob[-5] ^ 4]) + blob[-4:],
            "header bit": blob[:40] + bytes([blob[40] ^ 1]) + blob[41:], "trailing": blob + b"\x00",
            "version": blob[:4] + b"\x07" + blob[5:], "not lmz": b"PK\x03\x04" + blob[4:],
            "checksum": wrong_sha + blob[lmz.HEADER_BYTES:]}


MESSAGES = {"truncated": "truncated", "header only": "truncated", "a few bytes": "truncated",
            "payload bit": "payload is corrupt", "header bit": "header is corrupt", "trailing": "after its end",
            "version": "format version 7", "not lmz": "not an .lmz file", "checksum": "do not match the original"}


def test_damaged_files_are_refused(model):
    blob, _ = lmz.encode(TEXT, model, 100)
    for what, bad in damaged(blob).items():
        with pytest.raises(lmz.LmzError, match=MESSAGES[what]):
            lmz.decode(bad, model)


def test_commands_round_trip_and_never_replace_a_file(runs, tmp_path, capsys):
    source, packed, back = tmp_path / "in.txt", tmp_path / "in.lmz", tmp_path / "out.txt"
    source.write_bytes(TEXT)
    assert cli(["compress", str(source), "-o", str(packed), "--run", str(runs[0]), "--chunk-size", "100"]) == 0
    assert cli(["decompress", str(packed), "-o", str(back), "--run", str(runs[0])]) == 0
    assert back.read_bytes() == TEXT and "SHA-256 checked" in capsys.readouterr().out
    back.write_bytes(b"mine")
    assert cli(["decompress", str(packed), "-o", str(back), "--run", str(runs[0])]) == 2
    assert capsys.readouterr().err.strip() == f"error: {back} exists; pass --force to replace it"
    assert back.read_bytes() == b"mine"
    assert cli(["compress", str(source), "-o", str(packed), "--run", str(runs[0])]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli(["decompress", str(packed), "-o", str(back), "--run", str(runs[0]), "--force"]) == 0
    assert back.read_bytes() == TEXT
    assert cli(["compress", str(source), "-o", str(packed), "--run", str(runs[0]), "--force", "--verify"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lmz", "in.txt", "out.txt"]  # no temporary files


def test_commands_refuse_damage_and_another_model_in_one_line(runs, tmp_path, capsys):
    source, packed = tmp_path / "in.txt", tmp_path / "in.lmz"
    source.write_bytes(TEXT)
    assert cli(["compress", str(source), "-o", str(packed), "--run", str(runs[0]), "--chunk-size", "100"]) == 0
    capsys.readouterr()
    cases = {what: (bad, runs[0]) for what, bad in damaged(packed.read_bytes()).items()}
    cases["another model"] = (packed.read_bytes(), runs[1])
    for what, (bad, run) in cases.items():
        (tmp_path / "bad.lmz").write_bytes(bad)
        out = tmp_path / "out.txt"
        assert cli(["decompress", str(tmp_path / "bad.lmz"), "-o", str(out), "--run", str(run)]) == 2, what
        err = capsys.readouterr().err.strip().splitlines()  # progress bars, then the error
        errors = [ln for ln in err if ln.startswith("error: ")]
        assert errors == err[-1:] and MESSAGES.get(what, "compressed with model") in errors[0], (what, err)
        assert not out.exists(), what
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lmz", "in.lmz", "in.txt"]


@pytest.mark.slow
def test_the_command_line(runs, tmp_path):
    """As a user types them, in separate processes; and the refusals' one line there."""
    source, packed, back = tmp_path / "a.txt", tmp_path / "a.lmz", tmp_path / "b.txt"
    source.write_bytes(TEXT)
    run_cli("compress", str(source), "-o", str(packed), "--run", str(runs[0]))
    run_cli("decompress", str(packed), "-o", str(back), "--run", str(runs[0]))
    assert back.read_bytes() == TEXT
    line = one_line_error(run_cli("decompress", str(packed), "-o", str(back), "--run", str(runs[1]), "--force",
                                  check=False))
    assert "compressed with model" in line


# ---- the cross-configuration matrix --------------------------------------------------------------------
CORETYPES = ["Prescott", "Nehalem", "Sandybridge", "Haswell", "SkylakeX"]


def probe(runs, text: Path, reference: Path, coretype: str, threads: int, backend: str = "numpy",
          processes: int = 1) -> dict:
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype, "OPENBLAS_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "COPYSTUDY_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "lmz_probe.py"), str(runs[0]), str(text),
                           str(reference), backend, str(processes)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"coretype": coretype, "threads": threads, "backend": backend, "processes": processes,
            **json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.slow
def test_every_configuration_writes_and_reads_the_same_bytes(runs, model, tmp_path):
    """Encoded under one configuration, decoded under every other: each OpenBLAS kernel this machine
    offers x 1 and 2 BLAS threads x 1 and 2 coder processes, and torch's kernels, each in its own
    process. Every configuration writes the identical file and decodes the reference one; the integer
    rows are identical everywhere. Control: the float32 predictor's rows differ between kernels, which
    is the failure this coder removes (asserted where both SkylakeX and Haswell kernels run)."""
    text, reference = tmp_path / "text.txt", tmp_path / "reference.lmz"
    text.write_bytes(TEXT)
    reference.write_bytes(lmz.encode(TEXT, model, 256)[0])
    results = [probe(runs, text, reference, c, t) for c in CORETYPES for t in (1, 2)]
    results += [probe(runs, text, reference, "SkylakeX", 1, processes=2)]
    results += [probe(runs, text, reference, "SkylakeX", t, backend="torch") for t in (1, 2)]
    kernels = {r["kernel"] for r in results}
    assert all(r["decodes"] for r in results), [r for r in results if not r["decodes"]]
    assert {r["lmz"] for r in results} == {hashlib.sha256(reference.read_bytes()).hexdigest()}
    assert len({r["integer_rows"] for r in results}) == 1
    print("\nkernels:", sorted(k for k in kernels if k), "configurations:", len(results))
    by_kernel = {r["kernel"]: r["float_rows"] for r in results if r["backend"] == "numpy"}
    if {"SkylakeX", "Haswell"} <= set(by_kernel):
        assert by_kernel["SkylakeX"] != by_kernel["Haswell"]
