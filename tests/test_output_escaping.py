"""Names that hold markup reach every output as text, never as markup another program runs.

A quoted name (`as "a`<img ...>`|b"`) may hold any printable character but `"` and `\\`, and a
block's string argument puts `{`, `}` into one through a template (`{{`, `}}`: literal braces).
Each output is read back by the program that interprets it: a CommonMark/GFM parser
(markdown-it-py) for markdown, an HTML (XML) parser for `_repr_html_`, Python's csv module for
CSV, the graphviz binary for DOT and SVG, pdflatex for TikZ."""
import csv
import io
import json
import re
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

import resdsl
from resdsl.backends.diagram import block as diagram
from resdsl.backends.diagram import circuit
from resdsl.backends.summary import csv_cell, format_summary, md_code, summary_rows

EVIL = '''
block B(tag: str) {
    conv(4, 1) as "k{tag}"
}
network evil() {
    input x: [1, 3, 8, 8]
    conv(4, 3, padding=1) as "a`<img src=x onerror=alert(1)>`|b"
    relu as "=cmd|' /C calc'!A0"
    conv(4, 3, padding=1) as "<b>"
    residual {
        conv(4, 3, padding=1) as "n:port"
    }
    conv(4, 1) as "@SUM(1+1)"
    conv(4, 1) as "-2+3"
    conv(4, 1) as "+2"
    conv(4, 1) as "%p"
    repeat 2 as "<r>|$%&amp;" { conv(4, 1) }
    B("{{$%}}&<i>~^#_") as "q``|<"
}
'''
NAMES = ["a`<img src=x onerror=alert(1)>`|b", "=cmd|' /C calc'!A0", "<b>", "n:port", "@SUM(1+1)", "-2+3", "+2", "%p",
         "<r>|$%&amp;.0.conv_0", "<r>|$%&amp;.1.conv_0", "q``|<.k{$%}&<i>~^#_"]


@pytest.fixture(scope="module")
def g():
    return resdsl.graph(EVIL)


def _md_html(md: str) -> str:
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark").enable("table").render(md)


# ------------------------------------------------------------------ markdown
def test_markdown_names_stay_inside_their_code_span_and_cell(g):
    html = _md_html(format_summary(g, None, "markdown"))
    root = ElementTree.fromstring(f"<root>{html}</root>")
    assert root.find(".//img") is None and root.find(".//i") is None  # no live HTML
    rows = root.findall(".//tbody/tr")
    assert all(len(r.findall("td")) == 4 for r in rows)  # a `|` in a name does not split the row
    codes = ["".join(r.find("td/code").itertext()) for r in rows if r.find("td/code") is not None]
    assert codes == [r.name for r in summary_rows(g, None)[0]]
    assert set(NAMES) <= set(codes)


@pytest.mark.parametrize("s", ["`", "a`b", "``", "`a", "a`", " a ", "|", "a``b```c", "<img src=x onerror=y>"])
def test_md_code_round_trips_through_commonmark(s):
    html = _md_html(f"| h |\n|---|\n| {md_code(s)} |\n")
    root = ElementTree.fromstring(f"<root>{html}</root>")
    assert "".join(root.find(".//td/code").itertext()) == s


# ------------------------------------------------------------------ html
def test_repr_html_is_html_with_escaped_names(g):
    s = resdsl.api.Summary(g, None)
    html = s._repr_html_()
    assert "**" not in html and "`" + NAMES[2] not in html  # HTML, not markdown shown literally
    table = ElementTree.fromstring(html.split("\n")[0])
    rows = table.findall("./tbody/tr")
    assert all(len(r.findall("td")) == 4 for r in rows)
    names = ["".join(r.find("td/code").itertext()) for r in rows[:-1]]
    assert names == [r.name for r in summary_rows(g, None)[0]] and set(NAMES) <= set(names)
    assert table.find(".//img") is None and table.find(".//i") is None


# ------------------------------------------------------------------ csv
def test_csv_cells_never_start_a_formula(g):
    rows = list(csv.reader(io.StringIO(format_summary(g, None, "csv"))))
    names = [r[1] for r in rows[1:-1]]
    assert "'=cmd|' /C calc'!A0" in names and "'@SUM(1+1)" in names and "'-2+3" in names and "'+2" in names
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r)
    assert "<b>" in names  # other names unchanged
    assert [csv_cell(x) for x in ("=1", "a=1", "", "-", "x")] == ["'=1", "a=1", "", "'-", "x"]


# ------------------------------------------------------------------ DOT and SVG
def _dot_json(src: str) -> dict:
    p = subprocess.run([shutil.which("dot"), "-Tjson"], input=src.encode(), capture_output=True, check=True)
    assert b"Warning" not in p.stderr, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("depth", [1, 2, None])
def test_dot_ids_are_quoted_no_stray_node_no_port(g, depth):
    src, *_ = diagram.plan(g, depth)
    d = _dot_json(src)
    nodes = [o["name"] for o in d["objects"] if "nodes" not in o and not o["name"].startswith(("cluster", 'title"'))]
    from resdsl.backends.diagram.dotsrc import node_name
    from resdsl.backends.diagram.view import View
    view = View(g, depth)
    # `n:port` is one node, not node `n` with a port; `%p` one node, not a new anonymous one at each mention
    assert sorted(nodes) == sorted(node_name(k) for k in view.items)
    by_id = {o["_gvid"]: o["name"] for o in d["objects"]}
    edges = sorted((by_id[e["tail"]], by_id[e["head"]]) for e in d["edges"] if e.get("style") != "invis")
    assert edges == sorted((node_name(s), node_name(t)) for s, t, _v, _c in view.edges)
    svg, _ = diagram.render(g, "svg", depth=depth)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    ids = {el.get("id") for el in root.iter(ns + "g")}
    assert set(view.items) <= ids  # SVG ids are the names, exactly


def test_circuit_dot_and_svg_keep_names_as_text(g):
    for depth in (1, None):
        svg, _ = circuit.render(g, "svg", depth=depth)
        root = ElementTree.fromstring(svg)
        texts = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
        assert any("<r>|$%&amp;" in t for t in texts)


# ------------------------------------------------------------------ TikZ
_TEX_SPECIAL = re.compile(r"(?<!\\)[&%$#_{}~^<>|]")


def _tex_texts(tex: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"\\node\[[^\n]*?\] at \([^)]*\) \{(.*)\};$", tex, re.M)]


@pytest.mark.parametrize("render", [diagram.render, circuit.render], ids=["block", "circuit"])
def test_tikz_labels_are_latex_escaped_and_compile(g, tmp_path, render):
    tex, _ = render(g, "tex", depth=None)
    tex = tex.decode()
    texts = _tex_texts(tex)
    assert texts
    for t in texts:  # outside the escapes resdsl writes, no character TeX would read as markup
        bare = re.sub(r"\\(textbackslash|textasciitilde|textasciicircum|textless|textgreater|textbar|textbf)\{\}?",
                      "", t)
        bare = re.sub(r"\$[^$]*\$", "", bare.replace(r"\$", ""))
        bare = re.sub(r"\\textbf\{|\\[&%#_{}]", "", bare)
        assert not _TEX_SPECIAL.search(bare.replace("{", "").replace("}", "")), t
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.fail("no pdflatex: `make setup` installs texlive-latex-base and texlive-pictures")
    (tmp_path / "f.tex").write_text(tex)
    p = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "f.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:]
