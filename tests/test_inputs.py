"""Input files and folders named by parameters are checked before the kernel starts, one line each."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import one_line_error, run_cli
from copystudy.common import data


def check(project, *sets):
    args = [a for s in sets for a in ("--set", s)]
    return run_cli("run", "toy", "--check", *args, cwd=project, env={"COPYSTUDY_ROOT": str(project)}, check=False)


def png(path, size=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def texts(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha " * 50)
    (folder / "b.txt").write_text("beta " * 50)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "sub").mkdir()
    return folder


def test_good_text_files_pass(project, texts):
    proc = check(project, f"text_files=['{texts}/a.txt', '{texts}/b.txt']")
    assert proc.returncode == 0 and "toy: ok" in proc.stdout
    assert check(project, f"text_files={texts}/[ab].txt").returncode == 0  # one glob is a list of one


@pytest.mark.parametrize("value, message", [
    ("{t}/missing.txt", "text_files: '{t}/missing.txt' matches no file"),
    ("{t}/*.md", "text_files: '{t}/\\*.md' matches no file"),
    ("{t}/sub", "text_files: '{t}/sub' matches only folders"),
    ("['{t}/a.txt', '{t}/empty.txt']", "text_files: {t}/empty.txt is empty"),
    ("{t}/a.txt", "names 1 file, and this notebook needs at least 2 documents"),
])
def test_bad_text_files_are_named(project, texts, value, message):
    line = one_line_error(check(project, "text_files=" + value.format(t=texts)))
    assert __import__("re").search(message.format(t=texts), line), line


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    for owner in ("alice", "bob"):
        for i in range(2):
            png(root / owner / f"{i}.png", seed=i)
    (root / ".git" / "objects").mkdir(parents=True)  # hidden folders are not owners
    png(root / ".ipynb_checkpoints" / "x.png")
    return root


def test_a_good_image_folder_passes_and_hidden_folders_are_not_owners(project, images):
    assert check(project, f"data_dir={images}").returncode == 0
    assert list(data.image_paths(images)) == ["alice", "bob"]
    assert list(data.image_folder(images, 8)) == ["alice", "bob"]


@pytest.mark.slow
def test_bad_image_folders_are_named(project, images, tmp_path):
    def error(value):
        return one_line_error(check(project, f"data_dir={value}"))

    assert f"data_dir: {tmp_path / 'nope'} does not exist" in error(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    assert "is not a folder" in error(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    assert "has no owner sub-folders with images" in error(tmp_path / "empty")
    hidden_only = tmp_path / "hidden_only"
    png(hidden_only / ".cache" / "a.png")
    assert "has no owner sub-folders with images" in error(hidden_only)
    (images / "carol").mkdir()
    (images / "carol" / "notes.txt").write_text("no images here")
    assert f"owner folder {images / 'carol'} has no images" in error(images)
    (images / "carol" / "notes.txt").unlink()
    (images / "carol" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    assert f"data_dir: {images / 'carol' / 'corrupt.png'} is not a readable image" in error(images)
    (images / "carol" / "corrupt.png").unlink()
    whole = png(tmp_path / "whole.png", size=64).read_bytes()
    (images / "carol" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    assert f"data_dir: {images / 'carol' / 'truncated.png'} is not a readable image" in error(images)


def test_the_digits_count_is_known_without_loading_them(tmp_path):
    assert data.image_count(None) == data.DIGITS_COUNT == len(data.digits()[0])
    root = tmp_path / "images"
    for i, owner in enumerate(("a", "b", "b")):
        png(root / owner / f"{i}.png", seed=i)
    assert data.image_count(root) == 3 and data.image_count(tmp_path / "nope") is None


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text \\(line 1, column 1: byte 0x89\\)"),
    (b"text\nthen\x00binary", "is not UTF-8 text \\(line 2, column 5: a NUL byte\\)"),
    (b"ends inside \xc3", "it ends inside a character"),
    (b"plain\nthen caf\xe9\n", "is not UTF-8 text \\(line 2, column 9: byte 0xe9\\)"),
    (b"ok\n" * 10 + b"\xff", "line 11, column 1: byte 0xff"),
])
def test_a_file_that_is_not_text_is_named(tmp_path, content, message):
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    for block in (4, 1 << 20):  # the same answer whatever the blocks it is read in
        with pytest.raises(ValueError, match=message):
            data.check_text(path, block=block)
    path.write_bytes("caf\u00e9 \u2013 na\u00efve\n".encode() * 5)
    data.check_text(path, block=3)  # UTF-8 split across blocks is text
