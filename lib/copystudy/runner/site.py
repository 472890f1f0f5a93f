"""The companion site: the committed canonical runs rendered to static HTML, without re-executing anything.

`python -m copystudy site [--out DIR]` turns every results/<notebook>/default/executed.ipynb into
DIR/<notebook>.html with nbconvert, and writes DIR/index.html: what each notebook asks, its headline
numbers from metrics.json, its figures as thumbnails, a link to its page and the run's manifest facts.
The index is itself a notebook of Markdown cells rendered by the same exporter, so the site has one
look: nbconvert's lab template, less what it would load from the web (require.js, widgets, mermaid),
with MathJax copied into DIR/mathjax/ from the jupyter-server-mathjax package, so the mathematics
renders offline, and a few lines of CSS that wrap long code lines and scroll wide tables.

The site writes only into a new or empty folder, or one that holds an earlier site (our marker file
`.copystudy-site`); any other folder is refused in one line, and `--force` writes into it anyway
(replacing the site's own files there, deleting nothing else).

Before rendering, each executed notebook is cleaned for reading: papermill's injected parameters are
folded into the parameter cell (each value replaced, its comment kept) and the injected cell dropped;
progress-bar lines and the paths of the machine that ran it are removed from the outputs, and the
one-line progress summaries a run writes to stderr are shown as plain output, not as warnings.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import sys
from pathlib import Path

import nbformat

from copystudy import experiments

PROGRESS = re.compile(r"\d+%\|.*\||\d+/\d+ \[\d|it/s\]|s/it\]")
NOISE = re.compile(r"IProgress not found|from \.autonotebook import")  # tqdm.auto's warning in older runs
SUMMARY = re.compile(r"^[^\n]+: \d+(/\d+)? in \d+ s$")  # the line a loop leaves in a run's notebook (training.progress)
MARKER = ".copystudy-site"
MATHJAX = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
THUMB = "max-width:420px; max-height:320px"


class SiteRefused(ValueError):
    """The site cannot be written where asked (one line for the user)."""


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(key: str) -> float | None:
    """'16' -> 16, '121K' -> 121000, '1.5M' -> 1.5e6; None when the key is not a number or a size."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([kKMG]?)\s*", str(key))
    return float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)] if m else None


def _value(value, fmt: str) -> str:
    if _missing(value):
        return "n/a"
    if fmt == "pct":
        return f"{100 * value:.2f} %"
    if fmt == "bool":
        return "yes" if value else "no"
    if fmt == "dict":
        keys = list(value)
        if all(_sort_key(k) is not None for k in keys):  # numbers and sizes in order of value, not as text
            keys.sort(key=_sort_key)
        return ", ".join(f"{k}: {_value(value[k], '.3g' if isinstance(value[k], float) else '')}" for k in keys)
    return format(value, fmt)


def headline(metrics: dict, key: str, fmt: str) -> str | None:
    """A metric as text, with the 95% interval metrics.json holds for it, as it holds it; None or NaN is
    'n/a'. None if the key is missing."""
    if key not in metrics:
        return None
    text = _value(metrics[key], fmt)
    ci = metrics.get(f"{key}_ci")
    if isinstance(ci, list) and len(ci) == 2 and fmt not in ("dict", "bool") and not _missing(metrics[key]):
        text += f" [{_value(ci[0], fmt)}, {_value(ci[1], fmt)}]"
    return text


# ---- cleaning an executed notebook for reading ----------------------------------------------------------
def fold_parameters(nb) -> None:
    """Put papermill's injected values into the parameter cell (keeping each line's comment) and drop
    the injected cell, so the parameters appear once, with their meaning."""
    injected = next((c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])), None)
    params = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if injected is None:
        return
    values = {}
    for line in injected.source.splitlines():
        m = re.match(r"^(\w+) = (.*)$", line)
        if m:
            values[m.group(1)] = m.group(2)
    if params is not None:
        lines = []
        for line in params.source.splitlines():
            m = re.match(r"^(\w+) = (.*?)(\s+#.*)?$", line)
            if m and m.group(1) in values:
                line = f"{m.group(1)} = {values.pop(m.group(1))}{m.group(3) or ''}"
            lines.append(line)
        lines += [f"{k} = {v}" for k, v in values.items()]  # a value the cell does not declare
        params.source = "\n".join(lines)
    nb.cells.remove(injected)


def clean_text(text: str, roots: list[str]) -> str:
    """Drop progress-bar lines; replace the machine's paths by paths inside the run folder."""
    keep = [ln for ln in re.split(r"[\r\n]", text) if ln.strip() and not PROGRESS.search(ln) and not NOISE.search(ln)]
    text = "\n".join(keep) + ("\n" if keep else "")
    text = re.sub(r"/\S*?/site-packages/", "", text)  # a library's file: its name inside the environment
    text = re.sub(r"(?:/\S*?/)?results/[\w-]+/[\w.-]+?(?:\.running)?/", "", text)  # a run folder: its contents
    for root in roots:
        text = text.replace(root, "")
    return text


def clean(nb, roots: list[str]):
    """A copy of an executed notebook for reading (see the module docstring)."""
    nb = copy.deepcopy(nb)
    where = nb.metadata.get("papermill", {}).get("input_path") or ""
    if "/notebooks/" in where:  # the project folder of the machine that ran it
        roots = [where.rsplit("/notebooks/", 1)[0] + "/", *roots]
    fold_parameters(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = clean_text(out.get("text", ""), roots)
                if out.get("name") == "stderr":
                    summaries, out["text"] = _split_summaries(out["text"])
                    if summaries:
                        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=summaries))
                if not out["text"].strip():
                    continue
            elif "data" in out and "text/plain" in out["data"]:
                plain = out["data"]["text/plain"]
                if plain.startswith("PosixPath(") and len(out["data"]) == 1:
                    continue  # the path a save_figure call returned
                out["data"]["text/plain"] = clean_text(plain, roots)
            outputs.append(out)
        cell["outputs"] = outputs
    return nb


def _split_summaries(text: str) -> tuple[str, str]:
    """(progress summary lines, the rest) of a stderr text: a summary is a loop's record, not a warning."""
    lines = text.splitlines(keepends=True)
    summaries = "".join(ln for ln in lines if SUMMARY.match(ln.rstrip("\n")))
    return summaries, "".join(ln for ln in lines if not SUMMARY.match(ln.rstrip("\n")))


# ---- the site --------------------------------------------------------------------------------------------
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  messageStyle: "none", showMathMenu: false
});
</script>
<script src="MATHJAX_URL"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}
<style type="text/css">
/* long lines (a parameter's comment, a printed table) wrap; wide HTML tables scroll inside their cell */
.jp-InputArea-editor pre, .jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output, .jp-RenderedMarkdown { overflow-x: auto; }
.jp-RenderedHTMLCommon table { display: block; max-width: 100%; overflow-x: auto; }
</style>
{%- endblock extra_css -%}
""".replace("MATHJAX_URL", MATHJAX)


def _exporter():
    """nbconvert's lab template without anything loaded from the web (see the module docstring)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"copystudy.html.j2": TEMPLATE})],
                            template_file="copystudy.html.j2")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


def check_out(out: Path, force: bool = False) -> None:
    """SiteRefused unless `out` is new, empty, an earlier site of ours, or `force` is given."""
    if out.exists() and not out.is_dir():
        raise SiteRefused(f"site --out {out} is a file, not a folder; give a new folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise SiteRefused(f"site --out {out} is a folder with files that is not a copystudy site (no {MARKER}); give "
                          "a new or empty folder, or --force to write the site into it (replacing index.html, the "
                          "notebook pages, their figures/ and mathjax/ there, deleting nothing else)")


def copy_mathjax(out: Path) -> None:
    """MathJax 2 from the jupyter-server-mathjax package into out/mathjax/ (the pages load it from there)."""
    from importlib import resources

    try:
        source = resources.files("jupyter_server_mathjax") / "static"
    except ModuleNotFoundError:
        raise SiteRefused("the site needs MathJax from the package jupyter-server-mathjax (a dependency of copystudy): "
                          "pip install 'jupyter-server-mathjax>=0.2.6,<0.3'") from None
    with resources.as_file(source) as folder:
        shutil.copytree(folder, out / "mathjax", dirs_exist_ok=True)


def _intro(nb) -> tuple[str, str]:
    """The notebook's title (its first heading) and question (the first paragraph after it)."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    lines = first.strip().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else "notebook"
    paragraphs = [p.strip() for p in "\n".join(lines[1:]).split("\n\n") if p.strip()]
    return title, " ".join(paragraphs[0].split()) if paragraphs else ""


def runs(results: Path, run: str = "default") -> dict[str, Path]:
    """Every notebook's canonical run folder that holds an executed notebook, in notebook order."""
    from copystudy.runner import plan

    order = list(plan.notebooks(plan.project_root()))
    found = {p.parent.parent.name: p.parent for p in results.glob(f"*/{run}/executed.ipynb")}
    return {name: found[name] for name in sorted(found, key=lambda n: (order.index(n) if n in order else 99, n))}


def build(out: Path, results: Path, run: str = "default", force: bool = False) -> Path:
    """Render every canonical run and the index into `out` (see `check_out`); returns the index's path."""
    check_out(out, force)
    folders = runs(results, run)
    if not folders:
        raise FileNotFoundError(f"no {results}/*/{run}/executed.ipynb to render")
    out.mkdir(parents=True, exist_ok=True)
    copy_mathjax(out)
    exporter, roots = _exporter(), sorted({str(results.resolve().parent) + "/", str(Path.home()) + "/"}, key=len,
                                          reverse=True)
    cards = ["# copystudy: the study as it was last run\n\nEach notebook below was executed with its default "
             "parameters (`make study`); its page shows the notebook with every output of that run. "
             "Numbers in brackets are 95% intervals."]
    for name, folder in folders.items():
        nb = nbformat.read(folder / "executed.ipynb", as_version=4)
        html, _ = exporter.from_notebook_node(clean(nb, roots), resources={"metadata": {"name": name}})
        (out / f"{name}.html").write_text(html, encoding="utf-8")
        figures = sorted((folder / "figures").glob("*.png"))
        if figures:
            shutil.copytree(folder / "figures", out / name / "figures", dirs_exist_ok=True)
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
        manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
        title, question = _intro(nb)
        numbers = [(label, headline(metrics, key, fmt)) for key, label, fmt in experiments.headlines(name)]
        rows = "\n".join(f"| {label} | {text} |" for label, text in numbers if text is not None)
        commit = ((manifest.get("git") or {}).get("commit") or "?")[:10]  # None outside a git checkout
        facts = (f"commit `{commit}`, {manifest.get('finished', '?')}, "
                 f"{manifest.get('machine', {}).get('cpu_count', '?')} cores, "
                 f"{manifest.get('wall_seconds', 0) / 60:.1f} min wall")
        thumbs = " ".join(f'<a href="{name}/figures/{f.name}"><img src="{name}/figures/{f.name}" alt="{f.stem}" '
                          f'title="{f.stem}" style="{THUMB}"></a>' for f in figures)
        cards.append(f"## [{title}]({name}.html)\n\n{question}\n\n"
                     + (f"| headline | this run |\n|---|---|\n{rows}\n\n" if rows else "")
                     + f"{thumbs}\n\n*Run: {facts}.* [Read the notebook]({name}.html)")
    index = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(c) for c in cards])
    html, _ = exporter.from_notebook_node(index, resources={"metadata": {"name": "copystudy"}})
    (out / "index.html").write_text(html, encoding="utf-8")
    pages = ["index.html", "mathjax/", *(f"{name}.html" for name in folders), *(f"{name}/figures/" for name in folders)]
    (out / MARKER).write_text(json.dumps({"created_by": "copystudy site", "pages": pages}, indent=1) + "\n")
    return out / "index.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="site", help="folder for the site (default: ./site)")
    parser.add_argument("--run", default="default", help="which run of each notebook to render (default: default)")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that is not an earlier site (its other files are kept)")


def main(args) -> int:
    from copystudy.runner import plan

    try:
        index = build(Path(args.out), plan.project_root() / "results", args.run, args.force)
    except (FileNotFoundError, SiteRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"site: {index}")
    return 0
