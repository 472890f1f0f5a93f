"""The companion site: the committed canonical runs rendered to static HTML, without re-executing anything.

`python -m copystudy site [--out DIR]` turns every results/<notebook>/default/executed.ipynb into
DIR/<notebook>.html with nbconvert, and writes DIR/index.html: what each notebook asks, its headline
numbers from metrics.json, its figures as thumbnails, a link to its page and the run's manifest facts.
The index is itself a notebook of Markdown cells rendered by the same exporter, so the site has one
look and no template of our own.

Before rendering, each executed notebook is cleaned for reading: papermill's injected parameters are
folded into the parameter cell (each value replaced, its comment kept) and the injected cell dropped;
progress-bar lines and the paths of the machine that ran it are removed from the outputs.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

from copystudy import experiments

PROGRESS = re.compile(r"\d+%\|.*\||\d+/\d+ \[\d|it/s\]|s/it\]")
NOISE = re.compile(r"IProgress not found|from \.autonotebook import")  # tqdm.auto's warning in older runs


def _value(value, fmt: str) -> str:
    if fmt == "pct":
        return f"{100 * value:.2f} %"
    if fmt == "bool":
        return "yes" if value else "no"
    if fmt == "dict":
        return ", ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
    return format(value, fmt)


def headline(metrics: dict, key: str, fmt: str) -> str | None:
    """A metric as text, with its 95% interval when metrics.json has one (None if the key is missing)."""
    if key not in metrics or metrics[key] is None:
        return None
    text = _value(metrics[key], fmt)
    ci = metrics.get(f"{key}_ci")
    if isinstance(ci, list) and len(ci) == 2 and fmt not in ("dict", "bool"):
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


# ---- the site --------------------------------------------------------------------------------------------
def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


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


def build(out: Path, results: Path, run: str = "default") -> Path:
    """Render every canonical run and the index into `out`; returns the index's path."""
    folders = runs(results, run)
    if not folders:
        raise FileNotFoundError(f"no {results}/*/{run}/executed.ipynb to render")
    out.mkdir(parents=True, exist_ok=True)
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
                          f'title="{f.stem}" style="max-width:240px; max-height:170px"></a>' for f in figures)
        cards.append(f"## [{title}]({name}.html)\n\n{question}\n\n"
                     + (f"| headline | this run |\n|---|---|\n{rows}\n\n" if rows else "")
                     + f"{thumbs}\n\n*Run: {facts}.* [Read the notebook]({name}.html)")
    index = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(c) for c in cards])
    html, _ = exporter.from_notebook_node(index, resources={"metadata": {"name": "copystudy"}})
    (out / "index.html").write_text(html, encoding="utf-8")
    return out / "index.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="site", help="folder for the site (default: ./site)")
    parser.add_argument("--run", default="default", help="which run of each notebook to render (default: default)")


def main(args) -> int:
    from copystudy.runner import plan

    try:
        index = build(Path(args.out), plan.project_root() / "results", args.run)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"site: {index}")
    return 0
