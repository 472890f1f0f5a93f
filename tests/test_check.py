"""`run NAME --check` refuses, in one line, everything a run would refuse before or just after its kernel starts.

Each case below passed `--check` and then failed in a cell or at start-up (issue 20); each is now a line
from --check, and the input a case changes is shown to pass without the change, so a check that refused
everything would fail here too. (Checks of a model spec key by key are tested with copystudy.models.)
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, one_line_error, run_cli


def check(name: str, *args: str, env: dict | None = None, params: str = "smoke"):
    return run_cli("run", name, "--check", "--params", str(ROOT / "params" / name / f"{params}.yaml"), *args,
                   env=env, check=False)


def sets(*pairs: str) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


def owners(root, n: int):
    """root/<owner00..>/a.png: an image folder of n owners, one 8x8 image each."""
    for i in range(n):
        (root / f"owner{i:02d}").mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 10 * i, dtype=np.uint8)).save(root / f"owner{i:02d}" / "a.png")
    return root


def test_threads_zero():
    assert one_line_error(check("lm_compression", "--threads", "0")) == \
        "error: --threads must be a whole number >= 1, got 0"
    assert check("lm_compression", "--threads", "1").returncode == 0


@pytest.fixture
def not_dask():
    """A TCP port where something answers, but not Dask (it replies with an HTTP error)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_dead_scheduler(not_dask):
    line = one_line_error(check("lm_compression", "--scheduler", "tcp://127.0.0.1:9"))
    assert line.startswith("error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answers there")
    line = one_line_error(check("lm_compression", "--scheduler", not_dask))
    assert "no Dask scheduler answers there (something answers, but not as a Dask scheduler" in line
    line = one_line_error(check("lm_compression", env={"COPYSTUDY_SCHEDULER": "tcp://127.0.0.1:9"}))
    assert line.startswith("error: $COPYSTUDY_SCHEDULER tcp://127.0.0.1:9: no Dask scheduler answers there")


def test_workers_are_capped_at_the_usable_cores():
    from copystudy.common.parallel import usable_cores

    proc = check("lm_compression", "--workers", "1000")
    assert proc.returncode == 0 and "lm_compression: ok" in proc.stdout
    assert proc.stderr.strip() == (f"note: --workers 1000 is more than the {usable_cores()} cores this run may use; "
                                   f"starting {usable_cores()} workers (--scheduler ADDRESS runs tasks on a cluster "
                                   "of yours, without this cap)")
    assert check("lm_compression", "--workers", "1").stderr == ""


def _cached_model(hf_home, repo: str) -> None:
    """The layout huggingface_hub's cache gives a downloaded model (refs/main naming a snapshot)."""
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / "config.json").write_text("{}")


def test_an_uncached_pretrained_model_offline(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    _cached_model(tmp_path / "hf", "someone/cached-lm")
    spec = "model={family: causal_lm, name_or_path: %s, device: cpu}"
    line = one_line_error(check("lm_compression", *sets(spec % "someone/uncached-lm"), env=env))
    assert line == ("error: model.name_or_path: 'someone/uncached-lm' is neither a local folder nor in the local "
                    "Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it; download it once with network "
                    "access, or give a local folder")
    assert check("lm_compression", *sets(spec % "someone/cached-lm"), env=env).returncode == 0
    line = one_line_error(check("lm_compression", *sets(spec % str(tmp_path / "no-such-model")), env=env))
    assert "no-such-model is not a folder holding a saved model" in line


@pytest.mark.parametrize("name", ["memorization", "copyright_risk"])
def test_heldout_size_larger_than_the_images(name, tmp_path):
    line = one_line_error(check(name, *sets("heldout_size=1797")))
    assert "heldout_size=1797" in line and "1797 images" in line and "scikit-learn's digits" in line
    assert check(name, *sets("heldout_size=1700")).returncode == 0
    folder = owners(tmp_path / "images", 4)
    line = one_line_error(check(name, *sets(f"data_dir={folder}", "heldout_size=4")))
    assert f"data_dir {folder} has 4 images" in line or "of the 4 images" in line


def test_royalty_folder_without_public_folders(tmp_path):
    folder = owners(tmp_path / "art", 3)
    line = one_line_error(check("royalty_shares", *sets(f"data_dir={folder}", "n_folder_owners=3", "shell_split=false")))
    assert f"data_dir {folder} has no public folders: its 3 sub-folders are all owners" in line
    assert check("royalty_shares", *sets(f"data_dir={folder}", "n_folder_owners=2", "shell_split=false")).returncode == 0


def test_royalty_folder_with_more_owners_than_exact_enumeration_affords(tmp_path):
    folder = owners(tmp_path / "art", 25)
    line = one_line_error(check("royalty_shares", *sets(f"data_dir={folder}", "n_folder_owners=24", "shell_split=false")))
    assert ("the folder game has 24 owners: exact Shapley values need 2^24 = 16,777,216 coalition models" in line
            and "at most 12 players" in line and "copystudy shapley --plan N" in line)
    line = one_line_error(check("royalty_shares", *sets(f"data_dir={folder}", "n_folder_owners=12", "shell_split=true",
                                                      "shell_dataset=folder")))
    assert "12 owners (one more as a shell company)" in line and "2^13" in line
    assert check("royalty_shares", *sets(f"data_dir={folder}", "n_folder_owners=12", "shell_split=false")).returncode == 0


def test_a_binary_file_as_text(tmp_path):
    png = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(png)
    latin1 = tmp_path / "old.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    good = tmp_path / "good.txt"
    good.write_text("plain text\n" * 20)
    line = one_line_error(check("lm_compression", *sets(f"text_files=[{png}, {good}]")))
    assert line == (f"error: text_files: {png} is not UTF-8 text (line 1, column 1: byte 0x89); give text files "
                    "saved as UTF-8")
    line = one_line_error(check("lm_compression", *sets(f"text_files=[{good}, {latin1}]")))
    assert f"{latin1} is not UTF-8 text (line 1, column 4: byte 0xe9)" in line
    assert check("lm_compression", *sets(f"text_files=[{good}, {good.with_name('good2.txt')}]")).returncode == 2
    good.with_name("good2.txt").write_text("more text\n")
    assert check("lm_compression", *sets(f"text_files=[{good}, {good.with_name('good2.txt')}]")).returncode == 0


def test_out_where_no_folder_can_be_made():
    line = one_line_error(check("lm_compression", "--out", "/proc/copystudy-check"))
    assert line.startswith("error: cannot write /proc/copystudy-check: /proc")
