"""Classical lossless compressors as baselines for LM compression, at their strongest settings.

gzip -9, bz2 -9, xz (LZMA2) -9e, zstd -19, brotli quality 11 and PPMd (variant I, order 6, 16 MB,
via pyppmd) -- the standard library and three small, well-kept bindings.

When data is compressed in independent chunks, two accountings are offered (`compressed_size`):

- "paper" (Deletang et al. 2023, `count_header_only_once` in their compress.py; the notebook's):
  every chunk is compressed in its container, and the size of the container's output for the
  one-byte input b"\x00" is subtracted for every chunk but the first. That size also holds the coded
  byte and the end of the stream, so each chunk is charged a few bytes less than it needs; with tiny
  chunks a chunk costs about nothing (at 1-byte chunks gzip, zstd, brotli and PPMd charged 0 bytes).
- "streams" (honest at any chunk size; the compress command's): every chunk pays the self-delimiting
  stream a decoder needs for it, and the file pays its container once (`Compressor.wrapper`):
  gzip: a raw deflate stream per chunk (gzip = 10-byte header + deflate + 8-byte trailer; 18 once);
  bzip2: each chunk's block(s), rounded up to whole bytes (a bzip2 file = 4-byte 'BZh9' + blocks +
  10-byte end-of-stream marker and CRC; 14 once; bzip2 has no raw mode, so a chunk is charged its
  stream minus those 14 bytes); xz: a raw LZMA2 stream per chunk (it ends with its own end marker),
  the xz container of a one-byte file once (stream header and footer, block header, check, index);
  zstd: a frame without its 4-byte magic number per chunk (4 once); brotli and PPMd: their streams
  as they are (neither has a container: nothing once).
The unchunked size is the container's output for the whole text in both.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from dataclasses import dataclass
from typing import Callable

import brotli
import pyppmd
import zstandard

PPMD_ORDER, PPMD_MEM = 6, 16 << 20


@dataclass(frozen=True)
class Compressor:
    """A named compressor: its container format (compress, decompress), a one-line description, and the
    per-chunk stream of the "streams" accounting: stream/unstream, less `trim` bytes per chunk, plus
    `wrapper` bytes once per file."""

    name: str
    label: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    stream: Callable[[bytes], bytes] | None = None  # None: the container's output is the stream
    unstream: Callable[[bytes], bytes] | None = None
    trim: int = 0
    wrapper_of: Callable[[], int] = lambda: 0

    def header_bytes(self) -> int:
        """The "paper" accounting's fixed cost: the size of the output for the one-byte input b'\\x00'."""
        return len(self.compress(b"\x00"))

    @property
    def wrapper(self) -> int:
        """Bytes of the container a chunked file carries once, in the "streams" accounting."""
        return self.wrapper_of()

    def chunk_bytes(self, chunk: bytes, verify: bool = False) -> int:
        """Bytes a chunk costs in the "streams" accounting (with verify: its stream decoded and compared)."""
        out = (self.stream or self.compress)(chunk)
        if verify and (self.unstream or self.decompress)(out) != chunk:
            raise ValueError(f"{self.name}: round trip failed on a chunk of {len(chunk)} bytes")
        return len(out) - self.trim


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
ZSTD_MAGICLESS = dict(format=zstandard.FORMAT_ZSTD1_MAGICLESS)


def _xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)


def _raw_lzma2(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)


def _zstd_magicless(data: bytes) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(19, source_size=len(data), **ZSTD_MAGICLESS)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


COMPRESSORS: dict[str, Compressor] = {c.name: c for c in [
    Compressor("gzip", "gzip -9", lambda d: gzip.compress(d, compresslevel=9, mtime=0), gzip.decompress,
               _deflate, lambda c: zlib.decompress(c, -15), wrapper_of=lambda: 18),
    Compressor("bz2", "bzip2 -9", lambda d: bz2.compress(d, compresslevel=9), bz2.decompress,
               trim=14, wrapper_of=lambda: 14),
    Compressor("lzma", "xz (LZMA2) -9e", _xz, lzma.decompress, _raw_lzma2,
               lambda c: lzma.decompress(c, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS),
               wrapper_of=lambda: len(_xz(b"\x00")) - len(_raw_lzma2(b"\x00"))),
    Compressor("zstd", "zstd -19", lambda d: zstandard.ZstdCompressor(level=19).compress(d),
               lambda c: zstandard.ZstdDecompressor().decompress(c), _zstd_magicless,
               lambda c: zstandard.ZstdDecompressor(**ZSTD_MAGICLESS).decompress(c), wrapper_of=lambda: 4),
    Compressor("brotli", "brotli -q 11", lambda d: brotli.compress(d, quality=11), brotli.decompress),
    Compressor("ppmd", "PPMd var. I order 6",
               lambda d: pyppmd.compress(d, max_order=PPMD_ORDER, mem_size=PPMD_MEM),
               lambda c: pyppmd.decompress(c, max_order=PPMD_ORDER, mem_size=PPMD_MEM)),
]}
ACCOUNTINGS = ("paper", "streams")


def get(name: str) -> Compressor:
    """A baseline by name, with a clear error naming the valid ones."""
    if name not in COMPRESSORS:
        raise ValueError(f"unknown compressor {name!r}; valid: {', '.join(COMPRESSORS)}")
    return COMPRESSORS[name]


def compressed_size(name: str, chunks: list[bytes], accounting: str = "paper", verify: bool = False,
                    progress=None) -> int:
    """Total compressed bytes of independently compressed chunks (see the module's docstring for the
    accountings; one chunk: the container's output). With verify=True every chunk is decompressed and
    compared with the input (ValueError if not equal). progress wraps the chunks."""
    comp = get(name)
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting must be one of {ACCOUNTINGS}, got {accounting!r}")
    chunks = [bytes(c) for c in chunks]
    if len(chunks) <= 1 or accounting == "paper":
        return _paper_size(comp, chunks, verify, progress)
    pieces = chunks if progress is None else progress(chunks)
    return sum(comp.chunk_bytes(c, verify) for c in pieces) + comp.wrapper


def _paper_size(comp: Compressor, chunks: list[bytes], verify: bool = False, progress=None) -> int:
    """The "paper" accounting: every chunk in its container, the one-byte output subtracted for every
    chunk but the first."""
    total = 0
    for chunk in (chunks if progress is None else progress(chunks)):
        out = comp.compress(chunk)
        if verify and comp.decompress(out) != chunk:
            raise ValueError(f"{comp.name}: round trip failed on a chunk of {len(chunk)} bytes")
        total += len(out)
    return total - max(0, len(chunks) - 1) * comp.header_bytes()


def sizes(chunks: list[bytes], names: list[str] | None = None, verify: bool = False, accounting: str = "paper",
          progress=None) -> dict[str, int]:
    """Compressed bytes for each baseline (all by default) on the same chunks. progress(iterable, desc=...)
    wraps each compressor's chunks, so a long run shows which compressor it is at."""
    names = names or list(COMPRESSORS)

    def bar(name):
        return None if progress is None else (lambda it: progress(it, desc=f"{get(name).label} on {len(chunks)} chunks"))

    return {name: compressed_size(name, chunks, accounting, verify, bar(name)) for name in names}


# ---- primed: the classical compressors given the LM's side information ----------------------------
ZSTD_DICT_BYTES = 112_640  # zstd's default --maxdict


def primed_size(name: str, side: bytes, chunk: bytes, side_size: int | None = None, verify: bool = False) -> int:
    """Bytes a compressor spends on `chunk` when it has already seen `side` (the decoder holds `side`
    too): size(side + chunk) - size(side), as if the side text primed the compressor's state."""
    comp = get(name)
    out = comp.compress(bytes(side) + bytes(chunk))
    if verify and comp.decompress(out) != bytes(side) + bytes(chunk):
        raise ValueError(f"{name}: round trip failed on a primed chunk of {len(chunk)} bytes")
    base = len(comp.compress(bytes(side))) if side_size is None else side_size
    return len(out) - base


def zstd_dictionary(samples: list[bytes], size: int = ZSTD_DICT_BYTES):
    """A zstd dictionary trained (zstd's COVER trainer) on `samples`, e.g. the training documents in chunks."""
    return zstandard.train_dictionary(size, [bytes(s) for s in samples if s])


def zstd_dictionary_size(chunks: list[bytes], dictionary, verify: bool = False) -> int:
    """Total bytes of the chunks compressed one by one with zstd -19 and `dictionary` (not counted:
    the decoder holds it, as it holds the LM's weights), the fixed frame cost counted once."""
    comp = zstandard.ZstdCompressor(level=19, dict_data=dictionary)
    dec = zstandard.ZstdDecompressor(dict_data=dictionary)
    with_dict = Compressor("zstd with a dictionary", "zstd -19 with a dictionary", comp.compress, dec.decompress)
    return _paper_size(with_dict, [bytes(c) for c in chunks], verify)
