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
    m = {"rate": 0.2381, "rate_ci": [0.2345, 0.2418], "flag": True, "share": 0.81, "share_ci": [0.59, 1.04]}
    assert site.headline(m, "rate", "pct") == "23.81 % [23.45 %, 24.18 %]"
    assert site.headline(m, "flag", "bool") == "yes" and site.headline(m, "missing", "pct") is None
    assert site.headline(m, "share", ".2f") == "0.81 [0.59, 1.04]"  # what metrics.json holds, as it holds it


def test_headline_dicts_in_order_of_value_and_missing_values_as_na():
    by_n = {"16": 0.928, "32": 0.643, "64": 0.268, "8": 0.99}
    assert site.headline({"x": by_n}, "x", "dict") == "8: 0.99, 16: 0.928, 32: 0.643, 64: 0.268"
    sizes = {"121K": 602.27, "23K": None, "72K": float("nan"), "8K": None, "1.5M": 3}
    assert site.headline({"x": sizes}, "x", "dict") == "8K: n/a, 23K: n/a, 72K: n/a, 121K: 602, 1.5M: 3"
    words = {"static": 1, "adaptive": 2}  # not numbers: the order metrics.json gives
    assert site.headline({"x": words}, "x", "dict") == "static: 1, adaptive: 2"
    m = {"a": None, "b": float("nan"), "b_ci": [float("nan"), float("nan")], "c": 0.5, "c_ci": [None, 0.7]}
    assert site.headline(m, "a", ".2f") == "n/a" and site.headline(m, "b", ".2f") == "n/a"
    assert site.headline(m, "c", ".2f") == "0.50 [n/a, 0.70]"


def test_progress_summaries_are_plain_output_and_warnings_stay_warnings():
    nb = site.nbformat.v4.new_notebook(cells=[site.nbformat.v4.new_code_cell("train()", outputs=[
        site.nbformat.v4.new_output("stream", name="stderr", text="main LM, one per seed (dask): 3/3 in 316 s\n"
                                    "UserWarning: careful\nsweep: 48 in 90 s\n")])])
    outputs = site.clean(nb, [])["cells"][0]["outputs"]
    assert [(o["name"], o["text"]) for o in outputs] == [
        ("stdout", "main LM, one per seed (dask): 3/3 in 316 s\nsweep: 48 in 90 s\n"), ("stderr", "UserWarning: careful\n")]


def test_the_site_loads_nothing_from_the_web_and_carries_mathjax(built):
    """No script, stylesheet, module or font from another host: the pages work offline."""
    out, _ = built
    external = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//|"""
                          r"""import\(\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I)
    for page in out.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not external.search(html), (page.name, external.search(html).group(0))
        assert f'src="{site.MATHJAX}"' in html and "white-space: pre-wrap" in html, page.name
    assert (out / "mathjax" / "MathJax.js").is_file() and (out / "mathjax" / "fonts" / "HTML-CSS" / "STIX-Web").is_dir()
    assert site.THUMB in (out / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_site_writes_only_into_a_new_empty_or_earlier_site_folder(tmp_path):
    from conftest import one_line_error, run_cli

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")
    line = one_line_error(run_cli("site", "--out", str(mine), check=False))
    assert line.startswith(f"error: site --out {mine} is a folder with files that is not a copystudy site")
    assert "--force" in line and (mine / "index.html").read_text() == "my own page"
    (mine / "notes.txt").write_text("keep")
    run_cli("site", "--out", str(mine), "--force")
    assert (mine / "notes.txt").read_text() == "keep" and "my own page" not in (mine / "index.html").read_text()
    assert (mine / site.MARKER).is_file()
    run_cli("site", "--out", str(mine))  # an earlier site of ours: rewritten without --force
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(run_cli("site", "--out", str(tmp_path / "file"), check=False))


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


NEEDS_CHROMIUM = pytest.mark.skipif(_chromium() is None and not os.environ.get("COPYSTUDY_REQUIRE_CHROMIUM"),
                                    reason="no chromium here (CI installs it and sets COPYSTUDY_REQUIRE_CHROMIUM)")


def rendered(page, *flags: str) -> str:
    """The page's DOM after headless Chromium ran its scripts (MathJax typesets, 15 s of virtual time)."""
    assert _chromium(), "COPYSTUDY_REQUIRE_CHROMIUM is set but chromium is not installed"
    proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=15000", *flags, "--dump-dom", page.as_uri()],
                          check=True, capture_output=True, text=True, timeout=120)
    return proc.stdout


@NEEDS_CHROMIUM
def test_mathematics_renders_offline_in_headless_chromium(built, tmp_path):
    """A page whose Markdown holds $...$: in the browser every formula is typeset (MathJax keeps its TeX in
    math/tex scripts and shows a rendering), and the visible text of the Markdown has no $ left. Without
    MathJax (the same page with its script removed) the $ signs are what a reader sees."""
    from bs4 import BeautifulSoup

    out, _ = built
    page = out / "description_length.html"
    source = site.nbformat.read(site.runs(ROOT / "results")["description_length"] / "executed.ipynb", as_version=4)
    formulas = sum(len(re.findall(r"(?<!\\)\$[^$]+\$", c.source)) for c in source.cells if c.cell_type == "markdown")
    assert formulas >= 5

    def visible(dom: str) -> tuple[str, int, int]:
        soup = BeautifulSoup(dom, "html.parser")
        scripts, typeset = len(soup.select('script[type^="math/tex"]')), len(soup.select("span.MathJax"))
        for tag in soup(["script", "style"]):
            tag.decompose()
        return " ".join(m.get_text(" ") for m in soup.select(".jp-MarkdownCell")), scripts, typeset

    text, scripts, typeset = visible(rendered(page))
    assert scripts == typeset == formulas and "$" not in text, (scripts, typeset, formulas)
    bare = tmp_path / "bare.html"
    bare.write_text(page.read_text(encoding="utf-8").replace(site.MATHJAX, "missing.js"), encoding="utf-8")
    text, scripts, _ = visible(rendered(bare))
    assert scripts == 0 and text.count("$") >= 2 * formulas


@NEEDS_CHROMIUM
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
