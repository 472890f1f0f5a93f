"""The companion site: the canonical runs rendered without re-execution, and the index in a real browser."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from copystudy.runner import plan, site

ROOT = plan.project_root()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return out, site.build(out, ROOT / "results")


def test_every_canonical_run_has_a_clean_page(built):
    out, index = built
    folders = site.runs(ROOT / "results")
    assert set(folders) == set(plan.notebooks(ROOT))  # every notebook has a committed canonical run
    for name, folder in folders.items():
        page = (out / f"{name}.html").read_text(encoding="utf-8")
        figures = list((folder / "figures").glob("*.png"))
        assert page.count("data:image/png;base64") >= 1 and figures, name  # the figures are in the page
        assert all((out / name / "figures" / f.name).is_file() for f in figures), name  # and beside it
        progress = [ln for ln in re.split(r"[\r\n]|<br>", page) if site.PROGRESS.search(ln)]
        assert len(progress) <= 20, (name, progress[:3])
        ran_in = site.nbformat.read(folder / "executed.ipynb", as_version=4).metadata["papermill"]["input_path"]
        ran_in = ran_in.rsplit("/notebooks/", 1)[0] + "/"  # the project folder of the machine that ran it
        for path in (str(ROOT), ran_in, "/home/", "/root/", "/tmp/", ".running/", "site-packages/", "/.venv/"):
            assert path not in page, (name, path)
        assert "IProgress" not in page, name
        assert "injected-parameters" not in page, name


def test_parameters_are_shown_once_with_their_comments():
    nb = site.nbformat.v4.new_notebook(cells=[
        site.nbformat.v4.new_code_cell("seed = 0  # int >= 0: the seed\nsteps = 10  # int: steps", metadata={"tags": ["parameters"]}),
        site.nbformat.v4.new_code_cell("# Parameters\nsteps = 99\nextra = 'x'\n", metadata={"tags": ["injected-parameters"]}),
        site.nbformat.v4.new_code_cell("print(1)")])
    site.fold_parameters(nb)
    assert len(nb.cells) == 2
    assert nb.cells[0].source == "seed = 0  # int >= 0: the seed\nsteps = 99  # int: steps\nextra = 'x'"


def test_progress_lines_and_machine_paths_are_removed():
    text = ("train: 50%|#####     | 5/10 [00:01<00:01, 4.0it/s]\rtrain: 100%|##########| 10/10 [00:02<00:00]\n"
            "saved /work/x/results/lm_compression/default.running/figures/a.png\nkept line\n")
    assert site.clean_text(text, ["/work/x/"]) == "saved figures/a.png\nkept line\n"
    warning = "/opt/env/lib/python3.11/site-packages/torch/x.py:3: UserWarning: careful\n"
    assert site.clean_text(warning, []) == "torch/x.py:3: UserWarning: careful\n"


def test_headline_with_interval():
    m = {"rate": 0.2381, "rate_ci": [0.2345, 0.2418], "flag": True}
    assert site.headline(m, "rate", "pct") == "23.81 % [23.45 %, 24.18 %]"
    assert site.headline(m, "flag", "bool") == "yes" and site.headline(m, "missing", "pct") is None


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None and not os.environ.get("COPYSTUDY_REQUIRE_CHROMIUM"),
                    reason="no chromium here (CI installs it and sets COPYSTUDY_REQUIRE_CHROMIUM)")
def test_index_renders_with_its_images_in_headless_chromium(built, tmp_path):
    """A screenshot of the index in headless Chromium, against the same page with its images removed:
    the thumbnails must draw. Plots bring thousands of colours (antialiased lines, colour maps); text,
    tables and links a few hundred."""
    from PIL import Image

    out, index = built
    assert _chromium(), "COPYSTUDY_REQUIRE_CHROMIUM is set but chromium is not installed"
    bare = out / "index_no_images.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", index.read_text(encoding="utf-8")), encoding="utf-8")

    def coloured(page):
        shot = tmp_path / f"{page.stem}.png"
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
        return len(np.unique(rgb.reshape(-1, 3) @ np.array([1 << 16, 1 << 8, 1])))  # distinct colours

    with_images, without = coloured(index), coloured(bare)
    assert with_images > 2000 and with_images > 10 * without, (with_images, without)
