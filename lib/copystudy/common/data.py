"""Data that ships with the dependencies (no downloads), and the user's own files and folders."""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DIGITS_COUNT = 1797  # images in scikit-learn's digits (a test holds it to len(digits()[0])), known without loading them


class NotUTF8(ValueError):
    """Bytes that are not UTF-8, with where the first bad byte is (line and column from 1)."""

    def __init__(self, line: int, column: int, byte: int):
        super().__init__(f"line {line}, column {column}: not UTF-8 (byte 0x{byte:02x})")
        self.line, self.column, self.byte = line, column, byte


def decode_utf8(raw: bytes) -> str:
    """UTF-8 text of a file's bytes (a byte-order mark, as spreadsheets write it, is dropped); NotUTF8 if not."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = raw.rfind(b"\n", 0, exc.start) + 1
        raise NotUTF8(raw[: exc.start].count(b"\n") + 1, exc.start - start + 1, raw[exc.start]) from None


def python_docs() -> dict[str, bytes]:
    """Python's reference documentation (pydoc_data.topics): topic -> UTF-8 text, ~465 KB of prose."""
    from pydoc_data.topics import topics

    return {name: topics[name].encode("utf-8") for name in sorted(topics)}


def stdlib_source(max_bytes: int = 2_000_000, skip_bytes: int = 0) -> dict[str, bytes]:
    """Source files of the standard library, in sorted path order, until max_bytes are collected; with
    skip_bytes, after the files that `stdlib_source(skip_bytes)` returns (a disjoint sample)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = set(stdlib_source(skip_bytes)) if skip_bytes > 0 else set()
    docs, total = {}, 0
    for path in sorted(root.glob("*.py")):
        if path.name in skip:
            continue
        data = path.read_bytes()
        if total + len(data) > max_bytes:
            break
        docs[path.name] = data
        total += len(data)
    return docs


def text_paths(text_files: list[str] | str, name: str = "text_files") -> list[Path]:
    """The files that paths or glob patterns name (`~` expanded, `**` recursive), in pattern then path order.

    FileNotFoundError naming a pattern that matches nothing; ValueError naming an empty file."""
    patterns = [text_files] if isinstance(text_files, str) else list(text_files)
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            what = "only folders" if matches else "no file"
            raise FileNotFoundError(f"{name}: {pattern!r} matches {what}; give text files or a glob such as "
                                    "'corpus/*.txt'")
        for path in files:
            if path.stat().st_size == 0:
                raise ValueError(f"{name}: {path} is empty")
            if path not in paths:
                paths.append(path)
    return paths


def check_text_files(text_files: list[str] | str, min_docs: int = 1, name: str = "text_files") -> list[Path]:
    """`text_paths`, each of them text (`check_text`), and at least `min_docs` of them (one file is one document)."""
    paths = text_paths(text_files, name)
    for path in paths:
        check_text(path, name)
    if len(paths) < min_docs:
        raise ValueError(f"{name}: {text_files!r} names {len(paths)} file, and this notebook needs at least "
                         f"{min_docs} documents (it splits whole documents, one per file); give several files "
                         "or a glob such as 'corpus/*.txt'")
    return paths


def check_text(path: Path, name: str = "text_files", block: int = 1 << 20) -> None:
    """ValueError unless the file is UTF-8 text without NUL bytes, naming the first byte that is not (a
    PNG, a PDF or a zip is named, not trained on). Read in blocks: one pass, little memory."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, line_start = 0, 1, 0  # bytes before this block; line number and start offset of its first line
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block)
            bad = [i for i in (chunk.find(b"\0"),) if i >= 0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                if not chunk:
                    raise ValueError(f"{name}: {path} is not UTF-8 text (it ends inside a character); give text "
                                     "files saved as UTF-8") from None
                bad.append(max(0, exc.start - (len(exc.object) - len(chunk))))  # the decoder holds earlier bytes too
            if bad:
                at = min(bad)
                before = chunk.rfind(b"\n", 0, at)
                where = (line + chunk.count(b"\n", 0, at), at - before if before >= 0 else offset + at - line_start + 1)
                what = "a NUL byte" if chunk[at] == 0 else f"byte 0x{chunk[at]:02x}"
                raise ValueError(f"{name}: {path} is not UTF-8 text (line {where[0]}, column {where[1]}: {what}); "
                                 "give text files saved as UTF-8")
            if not chunk:
                return
            line += chunk.count(b"\n")
            last = chunk.rfind(b"\n")
            line_start = offset + last + 1 if last >= 0 else line_start
            offset += len(chunk)


def text_corpus(text_files: list[str] | str | None = None) -> dict[str, bytes]:
    """The user's text files (paths or glob patterns) as documents, or Python's docs when None."""
    if text_files is None:
        return python_docs()
    return {str(path): path.read_bytes() for path in text_paths(text_files)}


def split_documents(docs: dict[str, bytes], heldout_fraction: float = 0.1, seed: int = 0):
    """Split documents (not bytes) into train and held-out sets of the same source.

    Documents are taken in a seeded random order into the held-out set until it holds at least
    `heldout_fraction` of all bytes; the rest is training data. Both keep the original key order.
    """
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if len(docs) < 2:
        raise ValueError("split_documents needs at least two documents")
    names = sorted(docs)
    order = np.random.default_rng(seed).permutation(len(names))
    target = heldout_fraction * sum(len(v) for v in docs.values())
    heldout, size = set(), 0
    for i in order:
        if size >= target or len(heldout) == len(names) - 1:
            break
        heldout.add(names[i])
        size += len(docs[names[i]])
    train = {k: docs[k] for k in names if k not in heldout}
    held = {k: docs[k] for k in names if k in heldout}
    return train, held


def join_documents(docs: dict[str, bytes]) -> bytes:
    """All documents concatenated in key order."""
    return b"".join(docs[k] for k in sorted(docs))


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: images float32 [1797, 1, 8, 8] in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    return images, bunch.target.astype(np.int64)


def load_image(path: Path, size: int, channels: int = 1) -> np.ndarray:
    """One image file resized to size x size, as float32 [C, H, W] in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def owner_folders(root: str | Path, name: str = "data_dir") -> list[Path]:
    """The owner sub-folders of root, sorted; hidden ones (.git, .ipynb_checkpoints, any dot-folder) are not owners."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{name}: {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{name}: {root} is not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_paths(root: str | Path, name: str = "data_dir") -> dict[str, list[Path]]:
    """root/<owner>/*.png|jpg|... -> owner -> image files; ValueError for no owners or an owner without images."""
    owners = {}
    for sub in owner_folders(root, name):
        files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise ValueError(f"{name}: owner folder {sub} has no images ({', '.join(IMAGE_SUFFIXES)})")
        owners[sub.name] = files
    if not owners:
        raise ValueError(f"{name}: {Path(root).expanduser()} has no owner sub-folders with images "
                         "(expected root/<owner>/*.png)")
    return owners


def check_image_folder(root: str | Path, name: str = "data_dir") -> dict[str, list[Path]]:
    """`image_paths`, and every image decodes in full (a corrupt or truncated file is named)."""
    from PIL import Image

    owners = image_paths(root, name)
    for files in owners.values():
        for path in files:
            try:
                with Image.open(path) as img:
                    img.load()
            except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for bad files
                raise ValueError(f"{name}: {path} is not a readable image ({exc})") from None
    return owners


def image_folder(root: str | Path, size: int, channels: int = 1) -> dict[str, np.ndarray]:
    """A folder with one sub-folder per owner (root/<owner>/*.png|jpg) -> owner -> [n, C, H, W]."""
    return {owner: np.stack([load_image(f, size, channels) for f in files])
            for owner, files in image_paths(root).items()}


def text_folder(root: str | Path, suffixes=(".txt", ".md", ".py", ".rst", ".html")) -> dict[str, dict[str, bytes]]:
    """Text works by owner: root/<owner>/* (one sub-folder per owner) or root/<owner>.txt (one file each)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir: {root} is not a folder")
    owners = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise ValueError(f"data_dir: owner folder {entry} has no text files ({', '.join(suffixes)})")
            owners[entry.name] = {str(p.relative_to(root)): p.read_bytes() for p in files}
        elif entry.suffix.lower() in suffixes:
            owners[entry.stem] = {entry.name: entry.read_bytes()}
    if not owners:
        raise ValueError(f"data_dir: {root} has no owner sub-folders or text files")
    return owners


def image_count(data_dir: str | Path | None) -> int | None:
    """How many images `image_split` reads: the digits', or the image files of data_dir's owner folders
    (a listing, nothing decoded); None when the folder does not list (the input check says why)."""
    if data_dir is None:
        return DIGITS_COUNT
    try:
        return sum(len(files) for files in image_paths(data_dir).values())
    except (OSError, ValueError):
        return None


def image_split(data_dir: str | None = None, image_size: int = 8, heldout_size: int = 300, seed: int = 0):
    """Images for the diffusion experiments: (train_pool, heldout, description).

    data_dir None = scikit-learn's digits (8x8); otherwise every owner's images in
    data_dir/<owner>/*.png|jpg pooled, resized to image_size, grey. The held-out split is drawn at
    random (seeded) and no model ever trains on it; the training pool is in a seeded random order,
    so the first N images of it are a random training set of size N.
    """
    if data_dir is None:
        images, _ = digits()
        what = "scikit-learn digits"
    else:
        owners = image_folder(data_dir, image_size, channels=1)
        images = np.concatenate(list(owners.values())).astype(np.float32)
        what = f"{len(images)} images of {len(owners)} owners in {data_dir}"
    if not 0 < heldout_size < len(images):
        raise ValueError(f"heldout_size must be in (0, {len(images)}), got {heldout_size}")
    perm = np.random.default_rng(seed).permutation(len(images))
    return images[perm[heldout_size:]], images[perm[:heldout_size]], what
