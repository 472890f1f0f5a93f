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


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_and_compress_cli(smoke_run, tmp_path, capsys):
    out, metrics = smoke_run("lm_compression")
    assert metrics["roundtrip_exact"] is True and metrics["adaptive_roundtrip_exact"] is True
    assert metrics["n_seeds"] == 2 and metrics["sweep_n_seeds"] == 2
    for key in ("rate_chunked_lm", "rate_unchunked_lm", "rate_unchunked_lm_adaptive", "ood_rate_chunked_lm",
                "lm_vs_best_primed_chunked_ratio"):
        lo, hi = metrics[f"{key}_ci"]
        assert lo < hi, key  # two training seeds make two different models: the interval has a spread
        assert 0 <= lo and len(metrics[f"{key}_ci"]) == 2, key  # a rate's interval stays at or above 0
    assert len(metrics["generalization_gap_bits_per_byte_ci"]) == 2
    assert 0 <= metrics["main_model_stopped_early_share_ci"][0] <= metrics["main_model_stopped_early_share_ci"][1] <= 1
    assert metrics["adaptive_lr_chosen"] in (0.0001, 0.001)
    for name in baselines.COMPRESSORS:  # priming with the LM's training text never costs more than a few bytes
        assert metrics[f"rate_unchunked_{name}_primed"] < metrics[f"rate_unchunked_{name}"] + 0.05, name
        assert 0 < metrics[f"ood_rate_chunked_{name}"] < 2
    names = ["lm", *baselines.COMPRESSORS]
    for name in names:
        for key in (f"rate_chunked_{name}", f"rate_unchunked_{name}", f"train_rate_chunked_{name}"):
            assert 0 < metrics[key] < 2, key
    assert 0 < metrics["model_bits_per_byte_heldout"] < 9
    assert 0 <= metrics["coded_bits_overhead_pct"] < 5
    assert metrics["adjusted_rate_chunked_lm"] > metrics["rate_chunked_lm"]
    assert metrics["lm_vs_gzip_chunked_ratio"] == pytest.approx(metrics["rate_chunked_lm"] / metrics["rate_chunked_gzip"])
    for fig in ("training_loss", "rates", "sweep_adjusted_rate", "sweep_raw_rate", "race"):
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


# ---- the fair race ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lzma", "ppmd", "brotli", "gzip", "bz2"])
def test_priming_charges_size_of_side_plus_chunk_minus_side(name):
    """A chunk that repeats the side text costs almost nothing once primed with it, while on its own it
    costs what the compressor always spends; an unrelated chunk costs about its plain size."""
    rng = np.random.default_rng(0)
    side = bytes(rng.integers(97, 123, 6000, dtype=np.uint8))
    chunk = side[1000:3000]
    comp = baselines.get(name)
    primed = baselines.primed_size(name, side, chunk, verify=True)
    assert primed == len(comp.compress(side + chunk)) - len(comp.compress(side))
    plain = len(comp.compress(chunk))
    # the repeat is (nearly) free given the side text; block sorting (bzip2) exploits it less than LZ or PPM
    assert primed < (0.7 if name == "bz2" else 0.1) * plain
    other = bytes(rng.integers(97, 123, 2000, dtype=np.uint8))
    assert baselines.primed_size(name, side, other) > 0.7 * len(comp.compress(other))  # no free lunch


def test_zstd_dictionary_trained_on_the_side_text_makes_its_repeats_cheap():
    rng = np.random.default_rng(1)
    words = [bytes(rng.integers(97, 123, 7, dtype=np.uint8)) for _ in range(300)]
    side = b" ".join(words[i] for i in rng.integers(0, 300, 20000))
    chunks = [side[i:i + 512] for i in range(0, 8192, 512)]
    d = baselines.zstd_dictionary([side[i:i + 2048] for i in range(0, len(side), 2048)], size=16384)
    with_dict = baselines.zstd_dictionary_size(chunks, d, verify=True)
    assert with_dict < 0.7 * baselines.compressed_size("zstd", chunks)


def test_primed_rates_rows_and_charges():
    side = TEXT * 3
    table = rates.primed_rates({"heldout": TEXT[:700]}, side, (256, None), verify=True)
    assert set(table["compressor"]) == {f"{c}_primed" for c in baselines.COMPRESSORS}
    assert len(table) == len(baselines.COMPRESSORS) * 2
    lz = table[(table.compressor == "lzma_primed") & (table.chunking == "unchunked")].iloc[0]
    assert lz["compressed_bytes"] == baselines.primed_size("lzma", side, TEXT[:700])


def test_the_hyperparameter_choice_never_reads_the_reported_heldout_text(monkeypatch):
    """The main model's early stopping and the adaptive learning rate see the validation text only: its
    documents are disjoint from the held-out (reported) and fitted ones."""
    from copystudy.compression import early_stopping
    from copystudy.experiments.lm_compression import steps

    texts, _ = steps.texts(None, 0.1, 6000, 0.1, ood_bytes=1000, seed=0)
    assert not set(texts.validation_docs) & set(texts.heldout_docs)
    assert not set(texts.validation_docs) & set(texts.train_docs)
    seen = []

    class Recording(early_stopping.EarlyStopping):
        def __init__(self, model, validation, *args):
            seen.append(bytes(validation))
            super().__init__(model, validation, *args)

    monkeypatch.setattr(early_stopping, "EarlyStopping", Recording)
    spec = {"family": "causal_lm", "n_layer": 1, "n_head": 1, "n_embd": 8, "context": 32}
    trained = steps._main_model(spec, texts, steps.MainRecipe(6, 4, 1e-3, 2, 1), 0)
    assert seen == [texts.validation_text] and trained.best_step >= 1
    read = []
    monkeypatch.setattr(rates, "adaptive_ideal_bits", lambda lm, text, **kw: read.append(bytes(text)) or 1.0)
    choice = steps.choose_adaptive_lr(trained.lm, texts.validation_text, {"block": 512, "steps": 1, "window": 512},
                                      [1e-4, 1e-3])
    assert read == [texts.validation_text] * 2 and choice["chosen"].sum() >= 1
    assert not any(doc in t for t in seen + read for doc in texts.heldout_docs.values())
