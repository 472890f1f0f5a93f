"""Classical baselines: every compressor round-trips, and the fixed header is counted once per stream."""

import numpy as np
import pytest

from copystudy.compression import baselines, coding

TEXT = ("Python is a programming language that lets you work quickly. " * 60).encode()
SAMPLES = {"empty": b"", "one byte": b"\x00", "all 256": bytes(range(256)), "run": b"z" * 4000,
           "text": TEXT, "random": np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()}


@pytest.mark.parametrize("name", list(baselines.COMPRESSORS))
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_round_trip(name, sample):
    comp = baselines.get(name)
    data = SAMPLES[sample]
    assert comp.decompress(comp.compress(data)) == data


@pytest.mark.parametrize("name", list(baselines.COMPRESSORS))
def test_header_counted_once(name):
    comp = baselines.get(name)
    header = comp.header_bytes()
    assert header == len(comp.compress(b"\x00")) > 0
    pieces = coding.chunks(TEXT, 1024)
    per_chunk = sum(len(comp.compress(p)) for p in pieces)
    once = baselines.compressed_size(name, pieces, verify=True)
    assert once == per_chunk - (len(pieces) - 1) * header
    assert baselines.compressed_size(name, pieces, count_header_once=False) == per_chunk
    assert baselines.compressed_size(name, [TEXT]) == len(comp.compress(TEXT))  # one chunk: nothing removed
    assert baselines.compressed_size(name, []) == 0


@pytest.mark.parametrize("name", list(baselines.COMPRESSORS))
def test_compresses_text_not_random(name):
    comp = baselines.get(name)
    assert len(comp.compress(TEXT)) < 0.2 * len(TEXT)
    random = SAMPLES["random"]
    assert len(comp.compress(random)) > 0.95 * len(random)


def test_unchunked_beats_chunked_on_repetitive_text():
    sizes_chunked = baselines.sizes(coding.chunks(TEXT, 512))
    sizes_whole = baselines.sizes([TEXT])
    assert set(sizes_chunked) == set(baselines.COMPRESSORS)
    for name in baselines.COMPRESSORS:
        assert sizes_whole[name] < sizes_chunked[name], name


def test_unknown_compressor_named():
    with pytest.raises(ValueError, match="valid: gzip, bz2, lzma, zstd, brotli, ppmd"):
        baselines.get("rar")
