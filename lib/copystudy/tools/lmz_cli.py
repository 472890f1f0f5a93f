"""`compress FILE -o FILE.lmz --run RUN` and `decompress FILE.lmz -o FILE --run RUN`: files kept compressed
with the integer coder of a run's model (`compression.lmz`), decodable on any machine.

Every refusal is one line before any work: an unreadable input, an existing output (without --force),
a run without a model, a file that is not .lmz, of another format version, made with another model,
truncated or corrupt. The output is written under a temporary name in its folder and renamed into
place only when complete (for decompress: after the SHA-256 of the original matched), so no partial or
wrong file is ever left under the output's name; an existing output is replaced only with --force.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from copystudy.compression import lmz


class Refused(Exception):
    """A one-line reason not to go on."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """decompress's arguments (compress's file mode shares --run, -o and --force with compress_cli)."""
    parser.add_argument("file", help="the .lmz file to decompress")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the original")
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="the run folder whose model compressed it")
    parser.add_argument("--force", action="store_true", help="replace the output if it exists")


def check_readable(source: Path) -> None:
    """Refused unless source is a file this user can read (compress's measuring mode checks only this)."""
    if not source.is_file() or not os.access(source, os.R_OK):
        raise Refused(f"{source} is not a file this user can read")


def check_paths(source: Path, output: Path, force: bool) -> None:
    """Refused unless source is a readable file and output a new (or, with force, replaceable) file path."""
    check_readable(source)
    if output.is_dir():
        raise Refused(f"{output} is a folder; -o takes a file name")
    if output.exists() and output.resolve() == source.resolve():
        raise Refused(f"-o {output} is the input itself")
    if output.exists() and not force:
        raise Refused(f"{output} exists; pass --force to replace it")
    folder = output.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise Refused(f"cannot write into {folder}: no such folder, or not writable")


def write_new(output: Path, data: bytes, force: bool) -> None:
    """Write data under a temporary name beside output, then move it into place: atomically replacing
    output with force, else linking it in, which fails rather than replace a file that appeared since."""
    tmp = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, output)
            return
        try:
            os.link(tmp, output)
        except FileExistsError:
            raise Refused(f"{output} appeared while this ran; it was left as it is (pass --force to replace it)") \
                from None
        except OSError:  # a file system without hard links
            if output.exists():
                raise Refused(f"{output} appeared while this ran; it was left as it is") from None
            os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _bar(desc: str):
    from copystudy.models.training import progress

    return lambda it, **kw: progress(it, desc=desc, **kw)


def _model(run_dir):
    from copystudy.compression.integer_lm import IntegerGPT2
    from copystudy.tools.compress_cli import load_model

    try:
        return IntegerGPT2.from_lm(load_model(run_dir))
    except ValueError as exc:  # ModelError, or a model the integer coder does not support
        raise Refused(str(exc)) from None


def _processes() -> int:
    from copystudy.common.parallel import local_processes

    return local_processes()


def compress_to(args) -> int:
    """compress FILE -o OUT: the .lmz file of FILE, with --verify decoded again before it is written."""
    source, output = Path(args.file), Path(args.output)
    check_paths(source, output, args.force)
    model = _model(args.run)
    data = source.read_bytes()
    processes, t0 = _processes(), time.perf_counter()
    blob, _ = lmz.encode(data, model, args.chunk_size, processes, _bar(f"compress {source.name}"))
    seconds = time.perf_counter() - t0
    if args.verify and lmz.decode(blob, model, processes, _bar("verify")) != data:
        raise Refused("the round trip did not give the file back; nothing was written")
    write_new(output, blob, args.force)
    rate = f"{100 * len(blob) / len(data):.2f} %" if data else "-"
    print(f"{source}: {len(data):,} -> {len(blob):,} bytes ({rate}; {args.chunk_size or 'one'}"
          f"{'-byte chunks' if args.chunk_size else ' stream'}{', verified' if args.verify else ''}) in {seconds:.1f} s, "
          f"{len(data) / 1e3 / max(seconds, 1e-9):,.0f} KB/s in {processes} process{'es' * (processes > 1)} -> {output}")
    return 0


def decompress_to(args) -> int:
    source, output = Path(args.file), Path(args.output)
    check_paths(source, output, args.force)
    blob = source.read_bytes()
    header = lmz.read_header(blob)  # not .lmz, another version, a damaged header: refused before the model loads
    model = _model(args.run)
    lmz.check_model(header, model)
    processes, t0 = _processes(), time.perf_counter()
    data = lmz.decode(blob, model, processes, _bar(f"decompress {source.name}"))
    seconds = time.perf_counter() - t0
    write_new(output, data, args.force)
    print(f"{source}: {len(blob):,} -> {len(data):,} bytes, SHA-256 checked, in {seconds:.1f} s, "
          f"{len(data) / 1e3 / max(seconds, 1e-9):,.0f} KB/s in {processes} process{'es' * (processes > 1)} -> {output}")
    return 0


def run(action, args) -> int:
    """action(args) with every refusal as one line on stderr (exit 2)."""
    try:
        return action(args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
    except lmz.LmzError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    return run(decompress_to, args)
