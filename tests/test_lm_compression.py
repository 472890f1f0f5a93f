"""lm_compression: rates and the sweep (library), the notebook's smoke run, and the compress CLI."""

import argparse
import json

import numpy as np
import pytest
from conftest import run_cli

from copystudy.compression import baselines, coding, rates
from copystudy.tools import compress_cli
from copystudy.models.causal_lm import CausalLM

TEXT = ("The range coder spends -log2 p bits on a byte of probability p. " * 50).encode()


def test_rates_closed_form():
    assert rates.raw_rate(250, 1000) == 0.25
    assert rates.model_bytes(1000) == 2000
    assert rates.adjusted_rate(250, 1000, 1000) == pytest.approx(2.25)
    assert np.isnan(rates.raw_rate(0, 0))


def test_is_u_shaped():
    assert rates.is_u_shaped([3, 1, 2])
    assert not rates.is_u_shaped([1, 2, 3])
    assert not rates.is_u_shaped([3, 2, 1])


@pytest.fixture(scope="module")
def tiny_lm():
    lm = CausalLM.from_config(n_layer=1, n_head=1, n_embd=16, context=32, seed=0)
    lm.fit(TEXT, steps=30, batch_size=8, lr=5e-3, progress_bar=False)
    return lm


def test_batched_bits_match_causal_lm_bits(tiny_lm):
    data = TEXT[:500]
    assert np.allclose(tiny_lm.batched_bits(data, batch_size=3), tiny_lm.bits(data), atol=1e-4)
    assert tiny_lm.batched_bits(b"").shape == (0,)
    assert tiny_lm.batched_bits(b"x").tolist() == [8.0]


def test_compare_table(tiny_lm):
    table, details = rates.compare(tiny_lm, {"heldout": TEXT[:900], "train": TEXT[900:1800]},
                                         chunk_sizes=(256, None), show_progress=False)
    assert len(table) == 2 * 2 * (1 + len(baselines.COMPRESSORS))
    assert table["roundtrip_exact"].all()
    assert all(d["roundtrip_exact"] for d in details.values())
    lm = table[table.compressor == "lm"]
    assert (lm["adjusted_rate"] > lm["raw_rate"]).all()
    base = table[table.compressor != "lm"]
    assert (base["adjusted_rate"] == base["raw_rate"]).all()
    assert np.allclose(table["bits_per_byte"], 8 * table["raw_rate"])


def test_sweep_rows_and_validation():
    models = {"a": dict(n_layer=1, n_head=1, n_embd=8, context=16), "b": dict(n_layer=1, n_head=1, n_embd=16, context=16)}
    table = rates.sweep(TEXT, TEXT[:300], models, [500, 1500], steps=2, batch_size=2, show_progress=False)
    assert len(table) == 4
    row = table.iloc[0]
    assert row.adjusted_rate == pytest.approx(row.train_rate + 2 * row.n_params / row.data_bytes)
    best = rates.best_model_per_data_size(table)
    assert list(best.data_bytes) == [500, 1500]
    with pytest.raises(ValueError, match="sweep_data_sizes"):
        rates.sweep(TEXT, TEXT, models, [10 ** 7], steps=1, show_progress=False)


def test_smoke_run_and_compress_cli(run_notebook, tmp_path, capsys):
    out, metrics = run_notebook("lm_compression")
    assert metrics["roundtrip_exact"] is True and metrics["adaptive_roundtrip_exact"] is True
    assert metrics["n_seeds"] == 2 and metrics["sweep_n_seeds"] == 2
    for key in ("rate_chunked_lm", "rate_unchunked_lm", "rate_unchunked_lm_adaptive",
                "lm_heldout_minus_train_bits_per_byte"):
        lo, hi = metrics[f"{key}_ci"]
        assert lo <= metrics[key] <= hi, key
    names = ["lm", *baselines.COMPRESSORS]
    for name in names:
        for key in (f"rate_chunked_{name}", f"rate_unchunked_{name}", f"train_rate_chunked_{name}"):
            assert 0 < metrics[key] < 2, key
    assert 0 < metrics["model_bits_per_byte_heldout"] < 9
    assert 0 <= metrics["coded_bits_overhead_pct"] < 5
    assert metrics["adjusted_rate_chunked_lm"] > metrics["rate_chunked_lm"]
    assert metrics["lm_vs_gzip_chunked_ratio"] == pytest.approx(metrics["rate_chunked_lm"] / metrics["rate_chunked_gzip"])
    for fig in ("training_loss", "rates", "sweep_adjusted_rate", "sweep_raw_rate"):
        assert (out / "figures" / f"{fig}.png").is_file(), fig
    for table in ("rates", "rates_long", "lm_coding", "sweep"):
        assert (out / "tables" / f"{table}.csv").is_file() and (out / "tables" / f"{table}.md").is_file(), table
    assert (out / "models" / "lm" / "model.safetensors").is_file()

    # the compress subcommand with the model this run trained
    target = tmp_path / "sample.txt"
    target.write_bytes(TEXT[:1500] + bytes(range(256)))
    result = json.loads(run_cli("compress", "--run", str(out), str(target), "--chunk-size", "512", "--json").stdout)
    assert result["roundtrip_exact"] is True
    assert result["bytes_in"] == 1756
    assert result["model_bits"] == 16 * result["n_params"] == 16 * metrics["n_params"]
    assert set(result["baselines"]) == set(baselines.COMPRESSORS)
    assert result["coded_bytes"] > 0
    assert result["encode_seconds"] > 0 and result["decode_seconds"] > 0
    # the human-readable table and the error for a run without a model, in-process (no extra start-up)
    parser = argparse.ArgumentParser()
    compress_cli.add_arguments(parser)
    assert compress_cli.main(parser.parse_args(["--run", str(out), str(target), "--chunk-size", "0"])) == 0
    printed = capsys.readouterr().out
    assert "round trip      exact" in printed and "gzip -9" in printed and "unchunked" in printed
    assert compress_cli.main(parser.parse_args(["--run", str(tmp_path / "nowhere"), str(target)])) == 2
    assert "nowhere is not a folder" in capsys.readouterr().err


def test_sweep_steps_cover_the_data_and_corpus_mixes_in_stdlib():
    assert rates.sweep_steps(1000, 150, 1.0, 16, 128) == 150
    assert rates.sweep_steps(1_600_000, 150, 1.0, 16, 128) == 782  # one pass over 1.6 MB
    docs = {"a": b"x" * 100, "b": b"y" * 50}
    assert sorted(rates.sweep_corpus(docs, 0, seed=0)) == sorted(b"x" * 100 + b"y" * 50)
    mixed = rates.sweep_corpus(docs, 20_000, seed=0)
    assert len(mixed) > 150 and b"x" * 100 in mixed and b"def " in mixed


def test_coding_in_stream_batches_gives_the_same_code(tiny_lm):
    """Chunks coded in several lock-step batches give the same sizes as one batch (the predictor sees
    each stream alone) up to float32 rounding, which depends on the batch's shape, and still decode
    exactly (the decoder runs the encoder's batches)."""
    one = rates.lm_code(tiny_lm, TEXT[:1500], chunk_size=200, show_progress=False)
    many = rates.lm_code(tiny_lm, TEXT[:1500], chunk_size=200, show_progress=False, stream_batch=3)
    assert many["roundtrip_exact"] and one["roundtrip_exact"] and many["n_chunks"] == one["n_chunks"] == 8
    assert abs(many["coded_bits"] - one["coded_bits"]) <= 32 * many["n_chunks"]  # a word per stream at most
    assert many["ideal_bits"] == pytest.approx(one["ideal_bits"], rel=1e-6)


def test_stream_groups_are_near_equal_and_set_by_the_data():
    groups = coding.stream_groups(50, 32)
    assert [len(g) for g in groups] == [25, 25] and [i for g in groups for i in g] == list(range(50))
    assert [len(g) for g in coding.stream_groups(65, 32)] == [22, 21, 22]
    assert coding.stream_groups(3, 32) == [range(0, 3)] and coding.stream_groups(0, 32) == []
    with pytest.raises(ValueError, match="group_size"):
        coding.stream_groups(5, 0)


def test_worker_processes_give_the_same_code(tiny_lm):
    """Groups coded side by side in 2 worker processes give the very code of one process, bit for bit."""
    here = rates.lm_code(tiny_lm, TEXT[:3000], chunk_size=200, show_progress=False, stream_batch=4,
                               processes=1)
    forked = rates.lm_code(tiny_lm, TEXT[:3000], chunk_size=200, show_progress=False, stream_batch=4,
                                 processes=2)
    assert forked["coder_processes"] == 2 and here["coder_processes"] == 1
    assert forked["roundtrip_exact"] and here["roundtrip_exact"]
    assert (forked["coded_bits"], forked["ideal_bits"]) == (here["coded_bits"], here["ideal_bits"])


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing"])
def test_compress_with_a_damaged_model_is_one_line(tiny_lm, tmp_path, damage):
    run_dir = tmp_path / "run"
    model_dir = tiny_lm.save(run_dir / compress_cli.MODEL_SUBDIR)
    weights = model_dir / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "corrupt":
        weights.write_bytes(b"\x00" * 64)
    else:
        weights.unlink()
    target = tmp_path / "text.txt"
    target.write_bytes(TEXT[:500])
    proc = run_cli("compress", "--run", str(run_dir), str(target), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and f"the model in {model_dir} cannot be loaded" in line


def test_compress_measures_an_empty_file_in_strict_json(tiny_lm, tmp_path, capsys):
    """An empty file has no rates: null, never NaN (which strict JSON parsers reject)."""
    run_dir = tmp_path / "run"
    tiny_lm.save(run_dir / compress_cli.MODEL_SUBDIR)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    parser = argparse.ArgumentParser()
    compress_cli.add_arguments(parser)
    assert compress_cli.main(parser.parse_args(["--run", str(run_dir), str(empty), "--json"])) == 0
    text = capsys.readouterr().out
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert result["bytes_in"] == 0 and result["raw_rate"] is None and result["roundtrip_exact"] is True
    assert all(b["rate"] is None for b in result["baselines"].values())


def test_compress_shows_progress_and_the_coders_own_ideal(tiny_lm, tmp_path, capsys, monkeypatch):
    """A progress line for every classical compressor (they took 65 s on 3 MB with no output); the
    ideal is the length under the coder's own probabilities, which the coded size never undercuts."""
    monkeypatch.setenv("COPYSTUDY_PROGRESS", "1")
    run_dir = tmp_path / "run"
    tiny_lm.save(run_dir / compress_cli.MODEL_SUBDIR)
    target = tmp_path / "random.bin"
    target.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    parser = argparse.ArgumentParser()
    compress_cli.add_arguments(parser)
    assert compress_cli.main(parser.parse_args(["--run", str(run_dir), str(target), "--json",
                                                "--chunk-size", "300"])) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    for comp in baselines.COMPRESSORS.values():
        assert f"{comp.label} on 10 chunks" in out.err
    assert 0 <= result["coded_bits_overhead_pct"] < 2
    assert result["coded_bytes"] >= result["ideal_bytes"]
    assert result["baseline_accounting"] == "streams"
