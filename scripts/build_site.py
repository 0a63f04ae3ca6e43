#!/usr/bin/env python
"""Build the course's static site into build/site/ from the committed notebooks and their stored outputs.

    scripts/build_site.sh                 # npm ci (MathJax) + this script
    .venv/bin/python scripts/build_site.py [--out build/site]

Nothing is executed: each page is ``notebooks/NN_topic.ipynb`` as committed (``scripts/execute_notebooks.py``
stored its outputs), converted by nbconvert with the template in ``site/template/linattn``. The site
works offline and from any static file server; every script it loads is served from ``static/``:

* plotly figures are interactive: each ``application/vnd.plotly.v1+json`` output becomes a
  ``Plotly.newPlot`` call on a div, with plotly.js copied from the pinned plotly Python package;
* math is typeset by MathJax 3 from ``site/node_modules/mathjax`` (pinned in site/package-lock.json);
* an explorer shows its stored snapshot (PNG) and the note that a running kernel makes it live;
* launch links (Colab, Binder) come from ``[tool.linattn_edu]`` in pyproject.toml, as text links.

Pages: index.html (contents), one per notebook, instructors.html (notebooks/INSTRUCTORS.md).
"""
from __future__ import annotations

import argparse
import html
import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SITE = ROOT / "site"
MATHJAX = SITE / "node_modules" / "mathjax" / "es5"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
TITLE = "Linear attention, read along"

_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(editions)


def plotly_html(figure: dict, div_id: str) -> str:
    """An interactive figure: a div and the ``Plotly.newPlot`` call that fills it (plotly.js is on the page)."""
    payload = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {})})
    payload = payload.replace("</", "<\\/")  # never close the script tag from inside the JSON
    return (f'<div id="{div_id}" class="plotly-graph-div" style="width:100%;min-height:300px"></div>\n'
            f'<script>(function () {{ var fig = {payload};\n'
            f'Plotly.newPlot("{div_id}", fig.data, fig.layout, {{responsive: true, displaylogo: false}}); }})();'
            f'</script>')


def interactive_figures(nb: nbformat.NotebookNode, prefix: str) -> int:
    """Give every plotly output a ``text/html`` rendering (the page shows it first); returns how many."""
    count = 0
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = plotly_html(data[PLOTLY_MIME], f"{prefix}-fig-{i}-{j}")
                count += 1
    return count


def _markdown_links(text: str) -> str:
    """``[label](url)`` · … -> HTML anchors (the launch line above each page)."""
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)",
                  lambda m: f'<a href="{html.escape(m.group(2))}">{html.escape(m.group(1))}</a>', text)


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _local_links(page: str) -> str:
    """Links between notebooks (``03_linear_attention.ipynb``) point at their pages on the site."""
    page = re.sub(r'href="(?:\./)?(\d\d_[\w-]+)\.(?:ipynb|md)(#[^"]*)?"', r'href="\1.html\2"', page)
    repo, branch = editions.repository()  # files of the repository (../environment.yml): its GitHub page
    return re.sub(r'href="\.\./([^"#:]+)"', lambda m: f'href="{repo}/blob/{branch}/{m.group(1)}"', page)


def exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="linattn", extra_template_basedirs=[str(SITE / "template")])


def render(nb: nbformat.NotebookNode, **resources) -> str:
    body, _ = exporter().from_notebook_node(nb, resources={"site_static": "static", **resources})
    return _local_links(body)


def copy_static(out: Path) -> None:
    """plotly.js (from the plotly package) and MathJax 3 (from site/node_modules) into out/static/."""
    import plotly

    static = out / "static"
    static.mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    if not (MATHJAX / "tex-chtml-full.js").exists():
        sys.exit(f"MathJax is missing ({MATHJAX.relative_to(ROOT)}): run `npm ci --prefix site` "
                 "(or scripts/build_site.sh, which does)")
    (static / "mathjax").mkdir()
    shutil.copy(MATHJAX / "tex-chtml-full.js", static / "mathjax" / "tex-chtml-full.js")
    shutil.copytree(MATHJAX / "output" / "chtml" / "fonts" / "woff-v2",
                    static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2")


def markdown_page(title: str, markdown: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown)]
    nb.metadata["title"] = title
    return nb


def build(out: Path, notebooks_dir: Path = NOTEBOOKS) -> dict:
    """Build the site into ``out`` (replaced) from ``notebooks_dir``; returns {"pages": [...], "figures": n}."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    copy_static(out)
    notebooks = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    loaded = [(p, nbformat.read(p, as_version=4)) for p in notebooks]
    titles = [_title(nb, p.stem) for p, nb in loaded]
    figures, pages = 0, []
    for k, (path, nb) in enumerate(loaded):
        nb.metadata["title"] = titles[k]
        figures += interactive_figures(nb, path.stem[:2])
        launch = editions.badges(f"notebooks/{path.name}", images=False)
        student = editions.badges(f"editions/student/{path.name}", images=False)
        nav = {"site_prev": {"href": f"{loaded[k - 1][0].stem}.html", "title": titles[k - 1]} if k else None,
               "site_next": {"href": f"{loaded[k + 1][0].stem}.html", "title": titles[k + 1]}
               if k + 1 < len(loaded) else None,
               "site_launch": f"Run it: {_markdown_links(launch)} · student edition: {_markdown_links(student)}"}
        (out / f"{path.stem}.html").write_text(render(nb, **nav), encoding="utf-8")
        pages.append(f"{path.stem}.html")
    contents = "\n".join(f"{k + 1}. [{titles[k]}]({p.stem}.html)" for k, (p, _) in enumerate(loaded))
    guide = NOTEBOOKS / "INSTRUCTORS.md"
    index = (f"# {TITLE}\n\nA read-along course on linear attention: from softmax attention to kernels, "
             f"linear attention as an RNN, feature maps, and what it costs and loses. Every page shows "
             f"the notebook as committed, with its outputs; figures are interactive. The explorers are "
             f"shown as snapshots: open a notebook with a kernel (JupyterLab, Colab or Binder) to use them.\n\n"
             f"## Notebooks\n\n{contents}\n")
    if guide.exists():
        index += "\n## For instructors\n\n[The 90-minute lab path, discussion prompts and homework](instructors.html)\n"
        page = guide.read_text(encoding="utf-8")
        (out / "instructors.html").write_text(render(markdown_page("For instructors", page)), encoding="utf-8")
        pages.append("instructors.html")
    (out / "index.html").write_text(render(markdown_page(TITLE, index)), encoding="utf-8")
    pages.insert(0, "index.html")
    source = notebooks_dir.relative_to(ROOT).as_posix() if notebooks_dir.is_relative_to(ROOT) else str(notebooks_dir)
    (out / "pages.json").write_text(json.dumps({"pages": pages, "figures": figures, "notebooks": source}, indent=1),
                                    encoding="utf-8")
    return {"pages": pages, "figures": figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="where the executed notebooks are")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    info = build(args.out.resolve(), args.notebooks.resolve())
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"site: {args.out} — {len(info['pages'])} pages, {info['figures']} interactive figures, "
          f"{size / 2 ** 20:.1f} MiB, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
