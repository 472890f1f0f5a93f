"""Classical lossless compressors as baselines for LM compression, at their strongest settings.

gzip -9, bz2 -9, xz (LZMA2) -9e, zstd -19, brotli quality 11 and PPMd (variant I, order 6, 16 MB,
via pyppmd) -- the standard library and three small, well-kept bindings.

Header accounting (as Deletang et al. 2023 did, `count_header_only_once` in their compress.py): when
data is compressed in independent chunks, every chunk carries the compressor's fixed container cost
(magic bytes, flags, checksums, end markers) that a single stream would pay once. The fixed cost of a
compressor is *measured*, not looked up: it is the size of its output for a one-byte input
(b"\\x00"). The chunked size counts it once: sum(chunk sizes) - (n_chunks - 1) * header.
This slightly favours the baselines (the one-byte output also holds that byte's code). For reference,
the containers' known fixed parts are: gzip 10-byte header + 8-byte CRC32/length trailer; bz2 4-byte
'BZh9' + 6-byte block magic + 4-byte block CRC + 10-byte end-of-stream marker/CRC; xz 12-byte stream
header + 12-byte footer + block header and index; zstd 4-byte magic + frame header (+ content size);
brotli a window-size prefix and final empty meta-block; PPMd (pyppmd) no container, only the coder's
flush and end mark.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from dataclasses import dataclass
from typing import Callable

import brotli
import pyppmd
import zstandard

PPMD_ORDER, PPMD_MEM = 6, 16 << 20


@dataclass(frozen=True)
class Compressor:
    """A named compressor: compress and decompress functions and a one-line description."""

    name: str
    label: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]

    def header_bytes(self) -> int:
        """Fixed cost counted once per stream: the size of the output for the one-byte input b'\\x00'."""
        return len(self.compress(b"\x00"))


COMPRESSORS: dict[str, Compressor] = {c.name: c for c in [
    Compressor("gzip", "gzip -9", lambda d: gzip.compress(d, compresslevel=9, mtime=0), gzip.decompress),
    Compressor("bz2", "bzip2 -9", lambda d: bz2.compress(d, compresslevel=9), bz2.decompress),
    Compressor("lzma", "xz (LZMA2) -9e",
               lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME),
               lzma.decompress),
    Compressor("zstd", "zstd -19", lambda d: zstandard.ZstdCompressor(level=19).compress(d),
               lambda c: zstandard.ZstdDecompressor().decompress(c)),
    Compressor("brotli", "brotli -q 11", lambda d: brotli.compress(d, quality=11), brotli.decompress),
    Compressor("ppmd", "PPMd var. I order 6",
               lambda d: pyppmd.compress(d, max_order=PPMD_ORDER, mem_size=PPMD_MEM),
               lambda c: pyppmd.decompress(c, max_order=PPMD_ORDER, mem_size=PPMD_MEM)),
]}


def get(name: str) -> Compressor:
    """A baseline by name, with a clear error naming the valid ones."""
    if name not in COMPRESSORS:
        raise ValueError(f"unknown compressor {name!r}; valid: {', '.join(COMPRESSORS)}")
    return COMPRESSORS[name]


def _as_bytes(data) -> bytes:
    return bytes(data)


def compressed_size(name: str, chunks: list[bytes], count_header_once: bool = True,
                    verify: bool = False) -> int:
    """Total compressed bytes of independently compressed chunks, the fixed header counted once.

    With verify=True every chunk is decompressed and compared with the input (ValueError if not equal).
    """
    comp = get(name)
    if not chunks:
        return 0
    total = 0
    for chunk in chunks:
        out = comp.compress(_as_bytes(chunk))
        if verify and comp.decompress(out) != chunk:
            raise ValueError(f"{name}: round trip failed on a chunk of {len(chunk)} bytes")
        total += len(out)
    if count_header_once:
        total -= (len(chunks) - 1) * comp.header_bytes()
    return total


def sizes(chunks: list[bytes], names: list[str] | None = None, verify: bool = False) -> dict[str, int]:
    """Compressed bytes for each baseline (all by default) on the same chunks, headers counted once."""
    return {name: compressed_size(name, chunks, verify=verify) for name in (names or list(COMPRESSORS))}


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
    sizes = []
    for chunk in chunks:
        out = comp.compress(bytes(chunk))
        if verify and dec.decompress(out) != bytes(chunk):
            raise ValueError(f"zstd with a dictionary: round trip failed on a chunk of {len(chunk)} bytes")
        sizes.append(len(out))
    header = len(comp.compress(b"\x00"))
    return sum(sizes) - (len(chunks) - 1) * header if chunks else 0
