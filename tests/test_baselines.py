"""Classical baselines: every compressor round-trips; the paper's and the per-chunk stream accounting."""

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
def test_paper_accounting_counts_the_header_once(name):
    """Deletang et al.'s accounting (the notebook's): the one-byte output is subtracted per extra chunk."""
    comp = baselines.get(name)
    header = comp.header_bytes()
    assert header == len(comp.compress(b"\x00")) > 0
    pieces = coding.chunks(TEXT, 1024)
    per_chunk = sum(len(comp.compress(p)) for p in pieces)
    assert baselines.compressed_size(name, pieces, verify=True) == per_chunk - (len(pieces) - 1) * header
    for accounting in baselines.ACCOUNTINGS:  # one chunk: the container's output, in either accounting
        assert baselines.compressed_size(name, [TEXT], accounting) == len(comp.compress(TEXT))
        assert baselines.compressed_size(name, [], accounting) == 0


@pytest.mark.parametrize("name", list(baselines.COMPRESSORS))
def test_streams_accounting_is_the_container_less_its_fixed_bytes(name):
    """Known by the formats: a container is exactly its wrapper plus the chunk's stream (gzip 18 + raw
    deflate, bzip2 14 + blocks, zstd 4 + magicless frame, brotli and PPMd nothing); xz's raw LZMA2
    stream decodes by itself. Every stream decodes (verify)."""
    comp = baselines.get(name)
    for sample in SAMPLES.values():
        cost = comp.chunk_bytes(sample, verify=True)
        if name != "lzma":
            assert len(comp.compress(sample)) == cost + comp.wrapper
        else:
            assert 0 < cost < len(comp.compress(sample))
    pieces = coding.chunks(TEXT, 1024)
    assert baselines.compressed_size(name, pieces, "streams", verify=True) == \
        sum(comp.chunk_bytes(p) for p in pieces) + comp.wrapper


@pytest.mark.parametrize("name", list(baselines.COMPRESSORS))
def test_streams_accounting_is_honest_at_one_byte_chunks(name):
    """Issue 20: at 1-byte chunks the paper's accounting charged a chunk (nearly) nothing -- gzip, zstd,
    brotli and PPMd 0 bytes in total beyond the first. In the streams accounting every chunk's own
    stream costs at least a byte."""
    pieces = coding.chunks(TEXT[:40], 1)  # xz -9e takes 50 ms a chunk (a 64 MB dictionary)
    paper = baselines.compressed_size(name, pieces, "paper")
    honest = baselines.compressed_size(name, pieces, "streams")
    assert honest >= len(pieces)
    assert paper - baselines.get(name).header_bytes() < len(pieces) - 1  # < 1 byte per extra chunk
    with pytest.raises(ValueError, match="accounting"):
        baselines.compressed_size(name, pieces, "cheap")


def test_sizes_shows_progress():
    seen = []

    def progress(iterable, desc):
        seen.append(desc)
        return iterable

    pieces = coding.chunks(TEXT, 512)
    assert baselines.sizes(pieces, progress=progress, accounting="streams") == baselines.sizes(pieces, accounting="streams")
    assert seen == [f"{c.label} on {len(pieces)} chunks" for c in baselines.COMPRESSORS.values()]


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
