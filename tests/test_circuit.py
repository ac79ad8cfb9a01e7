"""`resdsl render --style circuit`: neural circuit diagrams, checked on what the graphviz binary draws.

The SVG is read as XML (its geometry: where wires run, where boxes sit), the PDF with
pypdf (page size, the size of every glyph run), the TikZ as text. References are the
IR's own shapes (the axes a diagram must label) and the graphviz binary that renders it.
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from resdsl.api import graph
from resdsl.backends.diagram.circuit import acted_axes, render
from resdsl.diagnostics import ResdslError

from conftest import ROOT

SVG = "{http://www.w3.org/2000/svg}"
NETS = {  # four networks, at a depth that opens their characteristic structure
    "transformer": (ROOT / "examples" / "transformer.res", None, 3),
    "vit": (ROOT / "stdlib" / "vit.res", "vit_b_16", 2),
    "resnet_bottleneck": (ROOT / "stdlib" / "resnet.res", "resnet50", 3),
    "unet": (ROOT / "examples" / "unet.res", None, 1),
}
_G = {}


def _graph(key):
    if key not in _G:
        f, n, _ = NETS[key]
        _G[key] = graph(str(f), n)
    return _G[key]


def _svg(g, depth):
    data, info = render(g, "svg", depth=depth)
    assert info["warnings"] == ""
    return ET.fromstring(data), data


def _cls(el):
    return (el.get("class") or "").split()


def _groups(root, *want):
    return [el for el in root.iter(SVG + "g") if all(w in _cls(el) for w in want)]


def _texts(el):
    return ["".join(t.itertext()) for t in el.iter(SVG + "text")]


def _path_points(el):
    d = el.find(SVG + "path").get("d")
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)]
    return list(zip(nums[0::2], nums[1::2]))


def _segments(root, cls="wire"):
    """(x1, y1, x2, y2) of each straight line drawn with class `cls` (y grows upward in graphviz SVG)."""
    out = []
    for e in _groups(root, "edge", cls):
        pts = _path_points(e)
        out.append((pts[0][0], pts[0][1], pts[-1][0], pts[-1][1]))
    return out


def _box(el):
    pts = _path_points(el)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), max(xs), min(ys), max(ys)


@pytest.mark.parametrize("key", list(NETS))
@pytest.mark.parametrize("fmt", ["svg", "pdf", "tex"])
def test_four_networks_render_in_every_format(key, fmt):
    g = _graph(key)
    depth = NETS[key][2]
    data, info = render(g, fmt, depth=depth)
    assert info["warnings"] == ""
    if fmt == "svg":
        root = ET.fromstring(data)
        assert float(root.get("width")[:-2]) == pytest.approx(info["width"], abs=1.0)
        # every axis of the input is a labelled wire: its name, and its size where that is not the name
        labels = [t for el in _groups(root, "node", "axis") for t in _texts(el)]
        for a in g.inputs[0].shape:
            assert (a.name or str(a.size)) in labels
            if a.name and a.name != str(a.size):
                assert str(a.size) in labels
        # the output's axes are labelled at the bottom too
        for a in g.outputs[0].shape:
            assert (a.name or str(a.size)) in labels
    elif fmt == "pdf":
        import pypdf
        page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
        assert float(page.mediabox.width) == pytest.approx(info["width"], abs=1.0)
        assert float(page.mediabox.height) == pytest.approx(info["height"], abs=1.0)
        assert "linear" in page.extract_text() or "conv" in page.extract_text()
    else:
        tex = data.decode()
        assert tex.count("\\begin{tikzpicture}") == 1 and tex.rstrip().endswith("\\end{document}")
        assert not re.search(r"[^\x00-\x7f]", tex)  # pdflatex-safe
        body = tex.split("\\begin{tikzpicture}")[1]
        assert body.count("{") == body.count("}")
        assert body.count("\\draw") > 10 and body.count("\\node") > 5


def test_linear_box_covers_d_only_and_n_l_pass_by():
    """`linear(d)` on [N, L, D]: a box on the D wire; the N and L wires run past it unbroken."""
    g = _graph("transformer")
    root, _ = _svg(g, 2)
    wires = _segments(root)
    boxes = _groups(root, "node", "op", "linear")
    assert boxes
    for b in boxes:
        x0, x1, y0, y1 = _box(b)
        through = {round(w[0], 1) for w in wires if w[0] == w[2] and min(w[1], w[3]) <= y0 - 1
                   and max(w[1], w[3]) >= y1 + 1}
        assert len(through) >= 1 and all(not (x0 <= x <= x1) for x in through)
        inside = [w for w in wires if x0 < w[0] < x1 and w[0] == w[2]]
        # the acted wire stops at the box and goes on below it; no wire crosses the box
        assert any(abs(max(w[1], w[3]) - y0) < 1.5 or abs(min(w[1], w[3]) - y1) < 1.5 for w in inside)
        assert not any(min(w[1], w[3]) < y0 - 1 and max(w[1], w[3]) > y1 + 1 for w in inside)
    # the embedding linear acts on D of [N, L, D]: exactly two wires (N, L) pass it
    first = min(boxes, key=lambda b: _box(b)[2])  # the top one (SVG y grows downward)
    x0, x1, y0, y1 = _box(first)
    passing = {round(w[0], 1) for w in wires if w[0] == w[2] and min(w[1], w[3]) < y0 and max(w[1], w[3]) > y1}
    assert len(passing) == 2


def test_acted_axes_follow_the_op_semantics():
    g = _graph("transformer")
    by_op = {n.op: n for n in g.nodes}
    assert acted_axes(by_op["linear"], 3) == [2]
    assert acted_axes(by_op["attention"], 3) == [1, 2]
    assert acted_axes(by_op["ln"], 3) == [2]
    assert acted_axes(by_op["gelu"], 3) == []
    conv = next(n for n in _graph("unet").nodes if n.op == "conv")
    bn = next(n for n in _graph("unet").nodes if n.op == "bn")
    assert acted_axes(conv, 4) == [1, 2, 3]
    assert acted_axes(bn, 4) == [0, 2, 3]  # batch statistics per channel: C is broadcast


def test_mlp_block_collapses_to_a_box_on_d_only():
    """At depth 3 the encoder layer is open and its MLP a labelled box, drawn on D alone."""
    g = _graph("transformer")
    root, _ = _svg(g, 3)
    mlp = [b for b in _groups(root, "node", "block") if "block" in _cls(b)]
    labels = [t for el in _groups(root, "node", "label") for t in _texts(el)]
    assert any(t.endswith("mlp") for t in labels) and any(t.startswith("MLP(") for t in labels)
    x0, x1, _, _ = _box(mlp[0])
    assert x1 - x0 < 20  # one wire wide (wire pitch 21 pt)


def test_repeat_badges_residual_copies_and_adds():
    g = _graph("transformer")
    root, _ = _svg(g, 2)
    badges = [t for el in _groups(root, "node", "badge") for t in _texts(el)]
    assert "×4" in badges  # the collapsed repeat of 4 encoder layers
    root3, _ = _svg(g, 3)
    glyphs = [t for el in _groups(root3, "node", "merge") for t in _texts(el)]
    assert glyphs.count("+") == 3  # two residual adds in the layer and the position embedding
    assert len(_groups(root3, "edge", "copy")) == 2  # each residual copies its input once
    assert len(_groups(root3, "edge", "lane")) > 0
    assert "×4" in [t for el in _groups(root3, "node", "badge") for t in _texts(el)]  # folded, open
    vit, _ = _svg(_graph("vit"), 2)
    assert "×12" in [t for el in _groups(vit, "node", "badge") for t in _texts(el)]


def test_regrouping_and_reductions_move_wires():
    """ViT: flatten merges H and W into one wire, permute crosses two; select ends a wire."""
    root, _ = _svg(_graph("vit"), 2)
    moves = _segments(root, "regroup")
    diagonal = [m for m in moves if abs(m[0] - m[2]) > 1]
    assert len(diagonal) >= 3
    # permute([0, 2, 1]): two lines that cross (their x order swaps)
    assert any(a[0] < b[0] and a[2] > b[2] and abs(a[1] - b[1]) < 0.5 for a in diagonal for b in diagonal)
    labels = [t for el in _groups(root, "node", "axis") for t in _texts(el)]
    assert "196" in labels and "197" in labels  # 14×14 patches, then the class token joins


def test_unet_skips_are_lanes_joined_by_concat():
    root, _ = _svg(_graph("unet"), 1)
    lanes = _segments(root, "lane")
    xs = {round(s[0], 1) for s in lanes}
    assert len(xs) >= 3 * 4  # three skips held at once, four lines each (N, C, H, W)
    assert len(_groups(root, "edge", "merge")) == 3


@pytest.mark.parametrize("fmt", ["svg", "pdf", "tex", "dot"])
def test_deterministic(fmt):
    g1 = graph(str(NETS["transformer"][0]))
    g2 = graph(str(NETS["transformer"][0]))
    assert render(g1, fmt, depth=3)[0] == render(g2, fmt, depth=3)[0]


def test_transformer_layer_fits_one_column_with_7pt_text():
    """Issue 13 target: depth 2 at most 252 pt wide at 100 %, no text under 7 pt (SVG and PDF)."""
    import pypdf
    g = _graph("transformer")
    for depth in (2, 3):
        data, _ = render(g, "svg", depth=depth, width="single")
        root = ET.fromstring(data)
        assert float(root.get("width")[:-2]) <= 252.0
        assert "scale(1 1)" in root.find(SVG + "g").get("transform")  # drawn at 100 %
        sizes = [float(t.get("font-size")) for t in root.iter(SVG + "text")]
        assert sizes and min(sizes) >= 7.0
        pdf, _ = render(g, "pdf", depth=depth, width="single")
        page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
        assert float(page.mediabox.width) <= 252.0
        runs = []
        page.extract_text(visitor_text=lambda text, cm, tm, fd, fs: runs.append(abs(tm[0] * cm[0]) * fs)
                          if text.strip() else None)
        assert runs and min(runs) >= 7.0 - 1e-3  # cairo stores 7 pt as 7 - 1/4096 (fixed point)


def test_too_wide_for_the_column_is_an_error():
    with pytest.raises(ResdslError, match="wide"):
        render(_graph("vit"), "svg", depth=2, width=120)


def test_cli_style_circuit(tmp_path):
    out = tmp_path / "t.svg"
    p = subprocess.run([sys.executable, "-m", "resdsl.cli", "render", str(NETS["transformer"][0]), "--style",
                        "circuit", "--depth", "2", "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    svg = ET.fromstring(out.read_bytes())
    assert _groups(svg, "edge", "wire") and _groups(svg, "node", "axis")  # a circuit, not a block chart
    p = subprocess.run([sys.executable, "-m", "resdsl.cli", "render", str(NETS["vit"][0]), "-n", "vit_b_16",
                        "--style", "circuit", "--width", "100", "-o", str(tmp_path / "v.pdf")],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "error[render]" in p.stderr and "Traceback" not in p.stderr


def test_width_without_depth_takes_the_deepest_that_fits(tmp_path):
    out = tmp_path / "e.svg"
    p = subprocess.run([sys.executable, "-m", "resdsl.cli", "render", str(NETS["transformer"][0]), "--style",
                        "circuit", "--width", "single", "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "at depth 3" in p.stderr  # the status line goes to stderr
    assert float(ET.fromstring(out.read_bytes()).get("width")[:-2]) <= 252.0


def test_bottleneck_shortcut_swaps_the_held_input_in():
    """ResNet-50's first bottleneck: the branch's result and the held input trade places (a crossing of
    the wires and a lane) before the downsample conv, which is labelled as the shortcut."""
    root, _ = _svg(_graph("resnet_bottleneck"), 3)
    park = _segments(root, "park")
    assert len(park) >= 4  # N, C, H, W go to the lane
    labels = [t for el in _groups(root, "node", "label") for t in _texts(el)]
    assert "1×1 conv, 256, /1 (shortcut)" in labels or "1×1 conv, 256 (shortcut)" in labels
    assert "×5" in [t for el in _groups(root, "node", "badge") for t in _texts(el)]  # layer3.1–5


def test_tikz_compiles_with_pdflatex(tmp_path):
    """The .tex of each of the four networks compiles with a real pdflatex to one page holding its labels
    (TeX from `make setup`: texlive-latex-base, texlive-pictures)."""
    import shutil

    import pypdf
    pdflatex = shutil.which("pdflatex")
    if not pdflatex:
        pytest.fail("no pdflatex: `make setup` installs it (apt-get install texlive-latex-base texlive-pictures)")
    for key in NETS:
        g = _graph(key)
        data, info = render(g, "tex", depth=NETS[key][2])
        (tmp_path / f"{key}.tex").write_bytes(data)
        p = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", f"{key}.tex"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-2000:]
        reader = pypdf.PdfReader(str(tmp_path / f"{key}.pdf"))
        assert len(reader.pages) == 1
        page = reader.pages[0]
        assert float(page.mediabox.width) == pytest.approx(info["width"] + 8, abs=2)
        text = page.extract_text()
        for a in g.inputs[0].shape:
            assert (a.name or str(a.size)) in text
