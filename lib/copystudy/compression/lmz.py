"""The .lmz file: bytes compressed with the integer coder (`integer_lm`), and everything a decoder needs to
refuse, before it starts, what it cannot decode.

Layout (little-endian):

    magic             4 bytes   b"\\x89LMZ"
    format version    1 byte    FORMAT_VERSION
    model             32 bytes  SHA-256 of the model's float weights and config (`integer_lm.model_sha256`)
    program           32 bytes  SHA-256 of the integer program decoding runs (`IntegerGPT2.program_sha256`)
    chunk size        u32       bytes per independently coded chunk; 0: one stream
    length            u64       bytes of the original
    checksum          32 bytes  SHA-256 of the original
    payload length    u64       bytes after the header
    payload CRC-32    u32
    header CRC-32     u32       of the 125 bytes before it
    payload           each chunk's number of 32-bit words (LEB128 varints), then every chunk's words (u32)

The chunks (`coding.chunks`) are coded side by side in worker processes; the integer predictor gives
every stream the same probabilities whatever batch or process codes it, so the words depend on the
data and the model alone.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from copystudy.compression import coding
from copystudy.compression.fixed_point import TorchOps
from copystudy.compression.integer_lm import IntegerGPT2, IntegerPredictor

MAGIC = b"\x89LMZ"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sB32s32sIQ32sQI")
HEADER_BYTES = _HEAD.size + 4
GROUP_SIZE = 64  # at most this many chunks in one lock-step batch


class LmzError(ValueError):
    """The file cannot be decoded here (one line, for the user)."""


class ModelMismatch(LmzError):
    """The file was compressed with another model, or with another integer program."""


@dataclass(frozen=True)
class Header:
    model_sha256: str
    program_sha256: str
    chunk_size: int  # 0: one stream
    length: int
    sha256: str
    payload_bytes: int
    payload_crc32: int

    def pack(self) -> bytes:
        head = _HEAD.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(self.model_sha256), bytes.fromhex(self.program_sha256),
                          self.chunk_size, self.length, bytes.fromhex(self.sha256), self.payload_bytes,
                          self.payload_crc32)
        return head + struct.pack("<I", zlib.crc32(head))


def chunk_lengths(length: int, chunk_size: int) -> list[int]:
    """The lengths of `coding.chunks(data, chunk_size or None)` for data of `length` bytes."""
    if not chunk_size:
        return [length]
    return [chunk_size] * (length // chunk_size) + ([length % chunk_size] if length % chunk_size else [])


def _varints(values) -> bytes:
    out = bytearray()
    for v in values:
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _read_varints(payload: bytes, n: int) -> tuple[list[int], int]:
    values, pos = [], 0
    for _ in range(n):
        value = shift = 0
        while True:
            if pos >= len(payload) or shift > 35:
                raise LmzError("its payload is corrupt: the chunk table runs past its end")
            byte = payload[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values, pos


def read_header(blob: bytes) -> Header:
    """The header of an .lmz file; LmzError (one line) if it is not one, is of another format version,
    or its header is truncated or corrupt."""
    if blob[:4] != MAGIC:
        raise LmzError("it is not an .lmz file (no LMZ signature at its start)")
    if len(blob) < 5 or blob[4] != FORMAT_VERSION:
        version = blob[4] if len(blob) > 4 else "?"
        raise LmzError(f"it is .lmz format version {version}; this copystudy reads version {FORMAT_VERSION}")
    if len(blob) < HEADER_BYTES:
        raise LmzError(f"it is truncated: {len(blob)} bytes, shorter than the {HEADER_BYTES}-byte header")
    head = blob[:_HEAD.size]
    if zlib.crc32(head) != struct.unpack("<I", blob[_HEAD.size:HEADER_BYTES])[0]:
        raise LmzError("its header is corrupt (CRC-32 mismatch)")
    _, _, model, program, chunk_size, length, sha, payload_bytes, crc = _HEAD.unpack(head)
    return Header(model.hex(), program.hex(), chunk_size, length, sha.hex(), payload_bytes, crc)


def check_model(header: Header, model: IntegerGPT2) -> None:
    """ModelMismatch (one line) unless `model` is the model, and the integer program, the file was made with."""
    if header.model_sha256 != model.model_sha256:
        raise ModelMismatch(f"it was compressed with model {header.model_sha256[:16]}, but the given run's model is "
                            f"{model.model_sha256[:16]}; decompress with the run that compressed it")
    if header.program_sha256 != model.program_sha256:
        raise ModelMismatch(f"its integer program {header.program_sha256[:16]} differs from this copystudy's "
                            f"{model.program_sha256[:16]} for the same model (another fixed-point version)")


def _groups(n_streams: int, processes: int) -> list[range]:
    """Groups of chunks, one lock-step batch each, enough for every process (the code does not depend on them)."""
    size = max(1, min(GROUP_SIZE, -(-n_streams // max(1, processes))))
    return coding.stream_groups(n_streams, size)


def _predictor(model: IntegerGPT2, backend: str, processes: int) -> tuple[IntegerPredictor, int]:
    """The predictor on numpy (in `processes` forked workers) or torch (here: torch and fork do not mix)."""
    if backend == "torch":
        return IntegerPredictor(model, TorchOps()), 1
    if backend != "numpy":
        raise ValueError(f"backend must be numpy or torch, got {backend!r}")
    return IntegerPredictor(model), processes


def encode(data: bytes, model: IntegerGPT2, chunk_size: int = 2048, processes: int = 1,
           progress=None, backend: str = "numpy") -> tuple[bytes, coding.Coded]:
    """The .lmz file of `data` (chunk_size 0: one stream), and its coding details (`coding.Coded`)."""
    data = bytes(data)
    pieces = coding.chunks(data, chunk_size or None)
    predictor, processes = _predictor(model, backend, processes)
    groups = [[pieces[i] for i in g] for g in _groups(len(pieces), processes)]
    coded = coding.code_groups([("encode", predictor, g) for g in groups], processes, progress)
    streams = [np.asarray(s, dtype="<u4") for c in coded for s in c.streams]
    payload = _varints(len(s) for s in streams) + b"".join(s.tobytes() for s in streams)
    header = Header(model.model_sha256, model.program_sha256, chunk_size or 0, len(data),
                    hashlib.sha256(data).hexdigest(), len(payload), zlib.crc32(payload))
    whole = coding.Coded([s for c in coded for s in c.streams], [n for c in coded for n in c.lengths],
                         sum(c.ideal_bits for c in coded), chunk_size or None,
                         quantised_bits=sum(c.quantised_bits for c in coded))
    return header.pack() + payload, whole


def decode(blob: bytes, model: IntegerGPT2, processes: int = 1, progress=None, backend: str = "numpy") -> bytes:
    """The original bytes of an .lmz file. Everything that can be checked is checked before decoding
    (format, model, length, payload checksum), and the result against the original's SHA-256 after:
    LmzError (one line) when anything does not match."""
    header = read_header(blob)
    check_model(header, model)
    payload = blob[HEADER_BYTES:]
    if len(payload) < header.payload_bytes:
        raise LmzError(f"it is truncated: {HEADER_BYTES + len(payload):,} of {HEADER_BYTES + header.payload_bytes:,} bytes")
    if len(payload) > header.payload_bytes:
        raise LmzError(f"it has {len(payload) - header.payload_bytes:,} bytes after its end")
    if zlib.crc32(payload) != header.payload_crc32:
        raise LmzError("its payload is corrupt (CRC-32 mismatch)")
    lengths = chunk_lengths(header.length, header.chunk_size)
    counts, pos = _read_varints(payload, len(lengths))
    if pos + 4 * sum(counts) != len(payload):
        raise LmzError("its payload is corrupt: the chunk table does not match the payload's length")
    words = np.frombuffer(payload, dtype="<u4", offset=pos, count=sum(counts)).astype(np.uint32)
    streams = np.split(words, np.cumsum(counts)[:-1]) if counts else []
    predictor, processes = _predictor(model, backend, processes)
    jobs = [("decode", predictor, (coding.Coded([streams[i] for i in g], [lengths[i] for i in g], 0.0), True))
            for g in _groups(len(lengths), processes)]
    try:
        data = b"".join(d for group in coding.code_groups(jobs, processes, progress) for d in group)
    except (AssertionError, ValueError) as exc:  # constriction's words for words that do not decode
        raise LmzError(f"its words do not decode ({type(exc).__name__}); the file is damaged") from None
    if hashlib.sha256(data).hexdigest() != header.sha256:
        raise LmzError("the decoded bytes do not match the original's SHA-256; nothing was written")
    return data
