#!/usr/bin/env python
"""Build the course's site (a Sphinx book) into build/site/ from the committed notebooks and their outputs.

    scripts/build_site.sh                 # npm ci (MathJax) + this script
    .venv/bin/python scripts/build_site.py [--out build/site] [--notebooks notebooks]

Nothing is executed. Three steps:

1. **Stage** (``stage``): each ``notebooks/NN_topic.ipynb`` as committed is copied into a source folder
   with what a reader should not see taken out of the *display* only: nbval's cell tags (and any
   ``# NBVAL_*`` comment line), the launch badges under the title (the page has launch buttons), the
   Colab install block, ``### BEGIN/END SOLUTION`` markers (the exercise cell is folded: tag
   ``hide-input``), the ``True`` a checker returns, stored widget views. Every plotly output gets an HTML
   rendering (a div and a ``Plotly.newPlot`` call, with an accessible name); each explorer's snapshot
   gets alt text, and where a kernel-free version exists (:mod:`linattn_edu.explorers.kernel_free`) the
   snapshot is replaced by a plotly figure whose slider moves through frames computed by the explorer's
   own code. An index page (each chapter's summary, reading time and prerequisites), the
   instructors' guide and the references (``docs/book/references.md``) are written beside them.
2. **Sphinx** (``sphinx-build -c docs/book``): sphinx-book-theme + myst-nb, pinned in constraints.txt;
   sidebar, on-this-page, offline search, prev/next, download and launch buttons, light/dark.
3. **Vendor**: plotly.js (from the pinned plotly package) and MathJax 3 (``site/node_modules``, pinned in
   site/package-lock.json) are copied into ``_static/``; pages load them only when they draw a figure
   or typeset math. No page loads anything from another host.
"""
from __future__ import annotations

import argparse
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CONF = ROOT / "docs" / "book"
MATHJAX = ROOT / "site" / "node_modules" / "mathjax" / "es5"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
EXPLORER_NOTE = "Run this cell to use the explorer"
TITLE = "Linear attention, read along"
WORDS_PER_MINUTE = 180  # reading technical prose; code cells count as 1 minute each to read and run

_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(editions)


# --------------------------------------------------------------------------- figures

def _figure_name(figure: dict) -> str:
    """An accessible name for a stored figure: its title (tags and markup dropped)."""
    title = (figure.get("layout", {}).get("title") or {})
    text = title.get("text", "") if isinstance(title, dict) else str(title)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip() or "interactive figure"


def plotly_html(figure: dict, div_id: str, *, note: str = "") -> str:
    """An interactive figure: a div (role img, named by the figure's title) and the call that fills it.

    plotly.js is loaded by the page (docs/book/conf.py adds it to pages that have a figure).
    """
    payload = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {}),
                          "frames": figure.get("frames", [])})
    payload = payload.replace("</", "<\\/")  # never close the script tag from inside the JSON
    name = html.escape(_figure_name(figure), quote=True)
    caption = f'<p class="linattn-figure-note">{html.escape(note)}</p>' if note else ""
    return (f'<div id="{div_id}" class="plotly-graph-div linattn-figure" role="img" aria-label="{name}" '
            f'style="width:100%;min-height:300px"></div>{caption}\n'
            f'<script>(function () {{ var fig = {payload};\n'
            f'window.linattnPlot("{div_id}", fig); }})();</script>')


# --------------------------------------------------------------------------- staging

_NBVAL = re.compile(r"^\s*# NBVAL_\w+.*$")
_SOLUTION = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def reader_source(source: str) -> tuple[str, bool]:
    """The code a reader sees: without ``# NBVAL_*`` lines, the Colab install block or solution markers.

    Returns (source, had_solution).
    """
    lines, out, skip_indent = source.split("\n"), [], None
    solution = False
    for line in lines:
        if skip_indent is not None:
            if line.strip() and (len(line) - len(line.lstrip())) <= skip_indent:
                skip_indent = None
            else:
                continue
        if _NBVAL.match(line):
            continue
        if _SOLUTION.match(line):
            solution = True
            continue
        if re.match(r"^\s*if \"google\.colab\" in sys\.modules", line):
            skip_indent = len(line) - len(line.lstrip())
            continue
        out.append(line)
    text = "\n".join(out).strip("\n")
    if "google.colab" in source and re.search(r"^import sys$", text, re.M) and "sys." not in text.replace(
            "import sys", ""):
        text = re.sub(r"^import sys\n+", "", text, count=1, flags=re.M)
    return text, solution


_BADGE = re.compile(r"\[!\[[^\]]*\]\(https?://[^)]+\)\]\([^)]+\)[ \t]*")


def _links(markdown: str) -> str:
    """Links to notebook sources point at their pages; links to repository files at GitHub.

    Launch badges (a link around an image from another host) are dropped: the page's launch buttons do
    their job, and the site loads nothing from another host.
    """
    markdown = _BADGE.sub("", markdown)
    markdown = re.sub(r"\]\((?:\./)?(\d\d_[\w-]+)\.md(#[^)]*)?\)", r"](\1.ipynb\2)", markdown)
    repo, branch = editions.repository()
    return re.sub(r"\]\(\.\./([^)#:]+)\)", lambda m: f"]({repo}/blob/{branch}/{m.group(1)})", markdown)


def _is_check_true(cell, output) -> bool:
    data = output.get("data", {})
    last = cell.source.strip().split("\n")[-1] if cell.source.strip() else ""
    return (output.get("output_type") == "execute_result" and list(data) == ["text/plain"]
            and "".join(data["text/plain"]).strip() == "True" and re.match(r"\s*check_\w*\(", last) is not None)


def _explorer_call(source: str) -> str | None:
    """The explorer factory a cell calls last (``decay_explorer``, ``gated_stepper``, ...), if any."""
    calls = re.findall(r"^(\w+)\(", source, re.M)
    return calls[-1] if calls else None


_TEX_WORDS = {r"\varphi": "φ", r"\phi": "φ", r"\gamma": "γ", r"\beta": "β", r"\top": "ᵀ", r"\ell": "ℓ",
              r"\le": "≤", r"\ge": "≥", r"\cdot": "·", r"\times": "×", r"\odot": "⊙", r"\,": " "}


def plain_text(markdown: str) -> str:
    """A heading or sentence as plain words for alt text: no TeX, emphasis or link markup."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)  # [words](link) -> words
    for tex, char in _TEX_WORDS.items():
        text = re.sub(re.escape(tex) + (r"(?![A-Za-z])" if tex[-1].isalpha() else ""), char, text)
    text = re.sub(r"\\(?:mathrm|operatorname|text|mathbf|mathbb)\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)
    text = re.sub(r"[$*_`{}^]", "", text)
    return re.sub(r"\s+", " ", text).strip()


_SUB = dict(zip("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
_SUP = dict(zip("0123456789+-=()in", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁱⁿ"))
_INLINE_TEX = {**_TEX_WORDS, r"\sqrt": "√", r"\exp": "exp", r"\pm": "±", r"\theta": "θ", r"\cdots": "…",
               r"\ldots": "…", r"\to": "→", r"\in": "∈", r"\,": " ", r"\;": " "}


def _script(body: str, table: dict, mark: str) -> str:
    """A sub- or superscript in Unicode where every character has one, else mark(body) (e.g. ^(±iθ))."""
    body = body.replace("−", "-")
    return "".join(table[c] for c in body) if body and all(c in table for c in body) else f"{mark}({body})"


def inline_tex_as_unicode(markdown: str) -> str:
    """``markdown`` with each inline ``$…$`` written in Unicode (φ(q)ᵀφ(k), Sₜ = Sₜ₋₁ + …, √d, N × N), so a
    page of prose needs no MathJax; a span with a construct it cannot write (\\frac, \\sum, …) stays TeX.
    Emphasis and links are kept (unlike :func:`plain_text`, which is for alt text)."""
    def one(match: re.Match) -> str:
        tex = match.group(1)
        for word, char in _INLINE_TEX.items():
            tex = re.sub(re.escape(word) + (r"(?![A-Za-z])" if word[-1].isalpha() else ""), char, tex)
        tex = re.sub(r"\\(?:mathrm|operatorname|text|mathbf|mathbb)\{([^{}]*)\}", r"\1", tex)
        tex = re.sub(r"√\{([^{}]*)\}", r"√(\1)", tex)
        tex = re.sub(r"\(([^()]*)\)_\{([^{}]*)\}", lambda m: f"({m.group(1)})" + _script(m.group(2), _SUB, "_"), tex)
        tex = re.sub(r"_\{([^{}]*)\}", lambda m: _script(m.group(1), _SUB, "_"), tex)
        tex = re.sub(r"_([A-Za-z0-9])", lambda m: _script(m.group(1), _SUB, "_"), tex)
        tex = re.sub(r"\^\{([^{}]*)\}", lambda m: _script(m.group(1).replace(" ", ""), _SUP, "^"), tex)
        tex = re.sub(r"\^([A-Za-z0-9])", lambda m: _script(m.group(1), _SUP, "^"), tex)
        tex = re.sub(r"√ +", "√", tex).replace("^ᵀ", "ᵀ")
        if "\\" in tex or "{" in tex or "}" in tex:
            return match.group(0)  # something this cannot write: leave it to MathJax
        return re.sub(r"\s+", " ", tex).strip()
    return re.sub(r"(?<!\$)\$([^$\n]+)\$(?!\$)", one, markdown)


def _explorer_name(factory: str | None) -> str:
    """``kv_cache_calculator`` -> ``KV-cache calculator``: the explorer as the prose names it."""
    if not factory:
        return "explorer"
    name = factory.replace("_", " ")
    return re.sub(r"\bkv cache\b", "KV-cache", name)


def snapshot_alt(factory: str | None, settings: str, section: str) -> str:
    """Alt text for an explorer's stored snapshot: which explorer, at which settings, in which section.

    ``settings`` is the explorer's repr (``RetrievalExplorer(n=24, d=16, ...)``), ``section`` the heading
    the cell sits under. Two snapshots of the same explorer (01 and 03) thus read differently.
    """
    alt = f"Snapshot of the {_explorer_name(factory)}'s default view"
    match = re.match(r"^\s*\w+\((.*)\)\s*$", settings, re.S)
    if match and match.group(1).strip():
        args = re.sub(r"\s+", " ", match.group(1).strip())
        alt += f" ({args if len(args) <= 120 else args[:117].rsplit(',', 1)[0] + ', …'})"
    if section:
        alt += f", in the section “{section}”"
    return alt


def stage_notebook(nb: nbformat.NotebookNode, prefix: str, kernel_free: dict) -> dict:
    """Rewrite ``nb`` in place for reading (see the module docstring); returns counts of what changed."""
    counts = dict(figures=0, hidden_lines=0, folded=0, explorers=0, kernel_free=0)
    nb.metadata.pop("widgets", None)
    section = ""  # the heading the current cell sits under (alt text of explorer snapshots)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            headings = re.findall(r"^#{1,4}\s+(.+)$", cell.source, re.M)
            if headings:
                section = plain_text(headings[-1])
            cell.source = _links(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        before = cell.source.count("\n") + 1
        cell.source, solution = reader_source(cell.source)
        counts["hidden_lines"] += before - (cell.source.count("\n") + 1)
        tags = [t for t in cell.metadata.get("tags", []) if t not in editions.NBVAL_TAGS]  # tests' business
        if solution:
            tags.append("hide-input")
            counts["folded"] += 1
        if not cell.source.strip():
            tags.append("remove-input")
        outputs, is_explorer = [], any(EXPLORER_NOTE in json.dumps(o) for o in cell.get("outputs", []))
        factory = _explorer_call(cell.source) if is_explorer else None
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if _is_check_true(cell, output):
                continue
            data.pop(WIDGET_MIME, None)
            if output.get("output_type") in ("display_data", "execute_result") and not data:
                continue
            if PLOTLY_MIME in data:
                data["text/html"] = plotly_html(data[PLOTLY_MIME], f"fig-{prefix}-{i}-{j}")
                counts["figures"] += 1
            if is_explorer and "text/markdown" in data and EXPLORER_NOTE in "".join(data["text/markdown"]):
                note = ("*The live explorer needs a kernel: open this page with the launch button at the top "
                        "(Binder or Colab) or in JupyterLab, then run the cell.*")
                if factory in kernel_free:
                    note = ("*Move the slider: each position is a frame computed by the explorer's own code. "
                            "The live explorer, with every control, runs with a kernel: use the launch button "
                            "at the top (Binder or Colab) or JupyterLab.*")
                data["text/markdown"] = note
            if is_explorer and "image/png" in data:
                counts["explorers"] += 1
                if factory in kernel_free:
                    figure = kernel_free[factory](cell.source)
                    data.clear()
                    data["text/html"] = plotly_html(figure, f"fig-{prefix}-{i}-{j}-kf")
                    data["text/plain"] = f"kernel-free {factory}"
                    counts["kernel_free"] += 1
                    counts["figures"] += 1
                else:
                    alt = snapshot_alt(factory, "".join(data.get("text/plain", "")), section)
                    cell.metadata.setdefault("mystnb", {})["image"] = {"alt": alt}
            outputs.append(output)
        cell.outputs = outputs
        if tags:
            cell.metadata["tags"] = sorted(set(tags))
        else:
            cell.metadata.pop("tags", None)
    return counts


def _kernel_free_builders() -> dict:
    """{explorer factory name: source -> plotly figure dict} for the explorers that have a kernel-free form."""
    from linattn_edu.explorers import kernel_free

    def build(name):
        def from_source(source: str) -> dict:
            call = re.search(rf"^{name}\((.*)\)\s*$", source, re.M | re.S)
            kwargs = eval(f"dict({call.group(1)})", {"__builtins__": {"dict": dict}}) if call else {}  # noqa: S307
            return kernel_free.FIGURES[name](**kwargs).to_plotly_json()
        return from_source

    return {name: build(name) for name in kernel_free.FIGURES}


def _first_paragraph(cells, label: str) -> str:
    """The text after ``**label**`` in the first markdown cells (a chapter's summary or prerequisites)."""
    for cell in cells[:3]:
        if cell.cell_type != "markdown":
            continue
        match = re.search(rf"\*\*{label}\*\*\s*(.+?)(?:\n\s*\n|$)", cell.source, re.S)
        if match:
            return re.sub(r"\s+", " ", match.group(1)).strip()
    return ""


def _minutes(nb: nbformat.NotebookNode) -> int:
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    code = sum(1 for c in nb.cells if c.cell_type == "code")
    return max(5, int(round((words / WORDS_PER_MINUTE + code) / 5.0)) * 5)


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def index_page(chapters: list[dict], has_guide: bool, has_references: bool = False) -> str:
    """The front page: what the course is, then one entry per chapter (summary, time, prerequisites)."""
    lines = [f"# {TITLE}", "",
             "A read-along course on linear attention, built on a small PyTorch library that is tested like "
             "production code: from softmax attention to kernel smoothing, linear attention as an RNN, feature "
             "maps, what it costs and what it loses, and how the field fixed it (windows, gates, the delta "
             "rule, hybrids). Every page is a notebook as committed, with its outputs; figures are "
             "interactive, and the explorers marked *moves without a kernel* have sliders that work right "
             "here. The launch buttons at the top of each page (Binder, Colab) open it with a kernel.", "",
             "Reading times are estimates from the length of each page (prose at about "
             f"{WORDS_PER_MINUTE} words a minute plus a minute per code cell).", ""]
    for ch in chapters:
        lines += [f"## [{ch['title']}]({ch['stem']}.ipynb)", "",
                  f"**About {ch['minutes']} minutes.** {ch['summary']}", ""]
        if ch["needs"]:
            lines += [f"*You need:* {ch['needs']}", ""]
        if ch["kernel_free"]:
            lines += [f"*Moves without a kernel:* {', '.join(ch['kernel_free'])}.", ""]
    if has_guide:
        lines += ["## [For instructors](instructors.md)", "",
                  "The 90-minute lab path, discussion prompts and homework.", ""]
    if has_references:
        lines += ["## [References](references.md)", "",
                  "The papers the chapters cite, with links, grouped by the question they answer.", ""]
    toc = ([ch["stem"] for ch in chapters] + (["instructors"] if has_guide else [])
           + (["references"] if has_references else []))
    lines += ["```{toctree}", ":hidden:", ":maxdepth: 2", "", *toc, "```", ""]
    return "\n".join(lines)


def stage(src: Path, notebooks_dir: Path) -> dict:
    """Write the site's sources into ``src``; returns {"chapters": [...], "figures": n, ...}."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    kernel_free = _kernel_free_builders()
    chapters, totals = [], dict(figures=0, hidden_lines=0, folded=0, explorers=0, kernel_free=0)
    for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        summary = inline_tex_as_unicode(_first_paragraph(nb.cells, "You will:"))
        needs = inline_tex_as_unicode(_first_paragraph(nb.cells, "You need:"))
        minutes = _minutes(nb)
        counts = stage_notebook(nb, path.stem[:2], kernel_free)
        for key in totals:
            totals[key] += counts[key]
        free = sorted({_explorer_call(c.source) for c in nb.cells if c.cell_type == "code"
                       and any("kernel-free" in "".join(o.get("data", {}).get("text/plain", ""))
                               for o in c.get("outputs", []))} - {None})
        chapters.append(dict(stem=path.stem, title=_title(nb, path.stem), summary=summary, needs=needs,
                             minutes=minutes, kernel_free=free))
        nbformat.write(nb, src / path.name)
    guide = notebooks_dir / "INSTRUCTORS.md"
    if not guide.exists():
        guide = NOTEBOOKS / "INSTRUCTORS.md"
    if guide.exists():
        (src / "instructors.md").write_text(_links(guide.read_text(encoding="utf-8")), encoding="utf-8")
    references = CONF / "references.md"  # the bibliography (docs/book/references.md), a plain MyST page
    if references.exists():
        shutil.copy(references, src / "references.md")
    (src / "index.md").write_text(index_page(chapters, guide.exists(), references.exists()), encoding="utf-8")
    return {"chapters": chapters, **totals}


# --------------------------------------------------------------------------- vendor + build

def vendor(out: Path) -> None:
    """plotly.js (from the plotly package) and MathJax 3 (from site/node_modules) into out/_static/."""
    import plotly

    static = out / "_static"
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    if not (MATHJAX / "tex-chtml-full.js").exists():
        sys.exit(f"MathJax is missing ({MATHJAX.relative_to(ROOT)}): run `npm ci --prefix site` "
                 "(or scripts/build_site.sh, which does)")
    (static / "mathjax").mkdir(exist_ok=True)
    shutil.copy(MATHJAX / "tex-chtml-full.js", static / "mathjax" / "tex-chtml-full.js")
    fonts = static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    shutil.copytree(MATHJAX / "output" / "chtml" / "fonts" / "woff-v2", fonts, dirs_exist_ok=True)


def check_hub_url(url: str) -> str:
    """A JupyterHub's address for the launch button: "" (no button) or an http(s) URL, without a trailing slash."""
    if not isinstance(url, str):
        raise TypeError(f"the hub URL must be a string; got {type(url).__name__}")
    if url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError(f"the hub URL must look like https://hub.example.edu (no query, no spaces); got {url!r}")
    return url.rstrip("/")


def build(out: Path, notebooks_dir: Path = NOTEBOOKS, *, jobs: int = 2, hub_url: str = "") -> dict:
    """Build the site into ``out`` (replaced); returns {"pages": [...], "figures": n, ...}.

    hub_url: a JupyterHub (with nbgitpuller) whose launch button each chapter shows beside Binder and Colab;
    "" shows none (the default: there is no hub everyone can use)."""
    hub_url = check_hub_url(hub_url)
    work = out.parent / f".{out.name}-src"
    info = stage(work, notebooks_dir)
    if out.exists():
        shutil.rmtree(out)
    repo, branch = editions.repository()
    env = dict(os.environ, LINATTN_SITE_CONFIG=json.dumps({"repository": repo, "branch": branch, "hub": hub_url}))
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", str(jobs), "-c", str(CONF), "-d",
           str(out.parent / f".{out.name}-doctrees"), str(work), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"sphinx-build failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    vendor(out)
    for page in out.glob("*.html"):  # the icons come from linattn-icons.css (webfonts), not a 1.5 MiB script
        text = page.read_text(encoding="utf-8")
        page.write_text(re.sub(r'<script defer src="_static/scripts/fontawesome\.js[^"]*"></script>\n?', "", text),
                        encoding="utf-8")
    pages = ["index.html"] + [f"{ch['stem']}.html" for ch in info["chapters"]]
    for extra in ("instructors.html", "references.html"):
        if (out / extra).exists():
            pages.append(extra)
    source = notebooks_dir.relative_to(ROOT).as_posix() if notebooks_dir.is_relative_to(ROOT) else str(notebooks_dir)
    meta = {"pages": pages, "figures": info["figures"], "notebooks": source, "hidden_lines": info["hidden_lines"],
            "folded": info["folded"], "explorers": info["explorers"], "kernel_free": info["kernel_free"], "hub": hub_url,
            "warnings": [line for line in done.stderr.splitlines() if "WARNING" in line]}
    (out / "pages.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="where the executed notebooks are")
    parser.add_argument("--jobs", type=int, default=2, help="sphinx-build -j (processes)")
    parser.add_argument("--hub-url", default=os.environ.get("LINATTN_HUB_URL", ""),
                        help="your class's JupyterHub (with nbgitpuller), e.g. https://hub.example.edu: each chapter "
                             "gets a JupyterHub launch button (default: $LINATTN_HUB_URL, else none)")
    args = parser.parse_args(argv)
    try:
        hub_url = check_hub_url(args.hub_url)
    except ValueError as err:
        parser.error(str(err))
    start = time.perf_counter()
    info = build(args.out.resolve(), args.notebooks.resolve(), jobs=args.jobs, hub_url=hub_url)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"site: {args.out} — {len(info['pages'])} pages, {info['figures']} interactive figures "
          f"({info['kernel_free']} kernel-free explorers), {info['hidden_lines']} test-machinery lines hidden, "
          f"{info['folded']} solutions folded, {size / 2 ** 20:.1f} MiB, {time.perf_counter() - start:.1f} s")
    for warning in info["warnings"][:20]:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
