"""`resdsl render`: read the output (SVG as XML, `dot -Tjson`, the PDF's font table), never pixels.

References: torch.fx graphs built by resdsl (call nodes, module targets), shapes that
torch computes when the module runs, torchvision's ResNet-50 stage layout, the
graphviz `dot` binary and pypdf.
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.fx

import resdsl
from resdsl.api import graph, load
from resdsl.backends.diagram.block import render, run_dot, to_dot
from resdsl.cli import main
from resdsl.diagnostics import ResdslError

from conftest import ROOT

RESNET = str(ROOT / "stdlib" / "resnet.res")
SVG = "{http://www.w3.org/2000/svg}"
BIG = 600  # ops: depth `all` of bigger variants takes dot 5-30 s; their smaller siblings share the blocks

TIED = """
block Refine(c: int) {
    residual { conv(c, 3, padding=1) as conv -> relu }
}
network tied(c: int = 8, steps: int = 3) {
    input x: [N, 3, H, W]
    conv(c, 3, padding=1) as stem
    repeat 2 as stages (i) { Refine(c) }
    loop steps shared { Refine(c) as refine }
    parallel(merge=concat) { conv(c, 1) as a -> relu | conv(c, 3, padding=1) as b }
    residual(merge=scale(0.1), drop_path=0.1) { conv(2 * c, 1) as proj }
}
"""


def _svg(g, **kw):
    data, info = render(g, "svg", **kw)
    assert info["warnings"] == ""
    return ET.fromstring(data)


def _classes(el):
    return (el.get("class") or "").split()


def _nodes(root):
    """The drawing's nodes: ops, boxes, inputs, outputs (frame titles are drawn as nodes too: not these)."""
    return [el for el in root.iter(SVG + "g") if "node" in _classes(el) and "title" not in _classes(el)]


def _edges(root):
    return [el for el in root.iter(SVG + "g") if "edge" in _classes(el)]


def _texts(el):
    return [t.text for t in el.iter(SVG + "text") if t.text]


def _title(el):
    return el.find(SVG + "title").text


def _ops(root):
    return [n for n in _nodes(root) if not {"input", "output", "block"} & set(_classes(n))]


@pytest.fixture(scope="module")
def r50():
    return graph(RESNET, "resnet50")


# ------------------------------------------------------------------ resnet50 at depth 1
def test_resnet50_depth1_boxes_badges_and_straight_main_path(r50):
    root = _svg(r50, depth=1)
    nodes = _nodes(root)
    assert len(nodes) <= 25
    badges = []
    for stage, blocks in zip(("layer1", "layer2", "layer3", "layer4"), (3, 4, 6, 3)):  # torchvision's [3, 4, 6, 3]
        box = [n for n in nodes if n.get("id") == stage]
        assert len(box) == 1, stage
        assert "repeat" in _classes(box[0])
        texts = _texts(box[0])
        assert "Bottleneck" in " ".join(texts)
        badges += [t for t in texts if re.fullmatch(r"×\d+", t)]
    assert badges == ["×3", "×4", "×6", "×3"]
    # no op of a residual block is drawn: skips live inside the boxes
    assert not any("skip" in _classes(e) for e in _edges(root))
    layout = json.loads(run_dot(to_dot(r50, 1), "json")[0])
    xs = {o["name"]: float(o["pos"].split(",")[0]) for o in layout["objects"]
                 if "pos" in o and not o["name"].startswith('title"')}
    assert len(xs) == len(nodes) and len(set(xs.values())) == 1, xs


def test_resnet50_skip_edges_go_to_the_side(r50):
    # torchvision: 16 residual joins in 4 stages, the first of each through a downsample (an edge in, an
    # edge out); depth 3 folds each stage's alike blocks 2.. into one: 2 joins per stage
    for depth, joins in ((3, 8), (None, 16)):
        root = _svg(r50, depth=depth)
        by_id = {n.get("id"): n for n in _nodes(root)}
        skips = [e for e in _edges(root) if "skip" in _classes(e)]
        assert len(skips) == joins + 4
        heads = collections.Counter()
        for e in skips:
            tail, head = _title(e).replace("&#45;", "-").split("->")
            classes = _classes(by_id[head])
            heads["add" if "add" in classes else ("downsample" if "downsample.0" in head else "?")] += 1
        assert heads == {"add": joins, "downsample": 4}
        layout = json.loads(run_dot(to_dot(r50, depth), "json")[0])
        pos = {o["name"]: float(o["pos"].split(",")[0]) for o in layout["objects"]
                 if "pos" in o and not o["name"].startswith('title"')}
        main_x = {x for k, x in pos.items() if "downsample" not in k}
        side_x = {x for k, x in pos.items() if "downsample" in k}
        assert len(main_x) == 1 and min(side_x) > max(main_x)


def test_node_count_never_decreases_with_depth(r50):
    for g in (r50, graph(TIED), graph(str(ROOT / "examples" / "cifar_resnet.res"))):
        counts = [len(_nodes(_svg(g, depth=d))) for d in (0, 1, 2, 3, 4, None)]
        assert counts == sorted(counts), (g.name, counts)
        assert counts[0] == 1 + len(g.inputs) + len(g.outputs)


# ------------------------------------------------------------------ depth all vs the fx graph
class _OpTracer(torch.fx.Tracer):
    """Traces through the block modules down to the op modules (torch.nn's and resdsl's runtime ones)."""

    def is_leaf_module(self, m, qualname):
        return super().is_leaf_module(m, qualname) or type(m).__module__ == "resdsl.backends.torch.runtime"


def _flat(model):
    """The model as one flat fx graph of ops (blocks are modules; the drawing at depth all is of ops)."""
    return torch.fx.GraphModule(model, _OpTracer().trace(model))


@pytest.mark.parametrize("src,net", [(RESNET, "resnet18"), (TIED, None)])
def test_depth_all_ops_are_the_fx_call_nodes(src, net):
    g = graph(src, net)
    gm = _flat(resdsl.build(src, net, seed=0))
    calls = [n for n in gm.graph.nodes if n.op in ("call_module", "call_function", "call_method")]
    root = _svg(g, depth=None)
    ops = _ops(root)
    assert len(ops) == len(calls)
    # stateful ops: node ids are the module paths (a shared module appears once per application)
    modules = collections.Counter(n.target for n in calls if n.op == "call_module")
    drawn = collections.Counter(n.get("id").split("@")[0] for n in ops
                                if n.get("id").split("@")[0] in dict(gm.named_modules()))
    assert drawn == modules
    kinds = collections.Counter(type(gm.get_submodule(n.target)).__name__ for n in calls if n.op == "call_module")
    drawn_kinds = collections.Counter()
    for n in ops:
        c = _classes(n)
        if "conv" in c:
            drawn_kinds["Conv2d"] += 1
        elif "bn" in c:
            drawn_kinds["BatchNorm2d"] += 1
        elif "linear" in c and "matmul" not in c:
            drawn_kinds["Linear"] += 1
        elif "drop_path" in c:
            drawn_kinds["DropPath"] += 1
    assert drawn_kinds == kinds


def test_shape_labels_are_the_shapes_torch_computes():
    from torch.fx.passes.shape_prop import ShapeProp
    g = graph(RESNET, "resnet18", input_shape=[2, 3, 64, 64])
    gm = _flat(resdsl.build(RESNET, "resnet18", seed=0))
    ShapeProp(gm).propagate(torch.randn(2, 3, 64, 64))
    mods = [n for n in gm.graph.nodes if n.op == "call_module"]
    actual = {n.target: tuple(n.meta["tensor_meta"].shape) for n in mods}
    given = {n.target: tuple(n.args[0].meta["tensor_meta"].shape) for n in mods}
    root = _svg(g, depth=None)
    labelled = unlabelled = 0
    for e in _edges(root):
        texts = _texts(e)
        tail = _title(e).replace("&#45;", "-").split("->")[0]
        if tail not in actual:
            continue
        if texts:  # a label wherever the op changes the shape, and it is torch's shape
            assert texts == ["×".join(map(str, actual[tail]))], tail
            labelled += 1
        else:
            assert actual[tail] == given[tail], tail
            unlabelled += 1
    assert labelled >= 8 and unlabelled >= 20


def test_shape_labels_use_the_author_axis_names(r50):
    root = _svg(r50, depth=1)
    labels = {_title(e).replace("&#45;", "-"): _texts(e) for e in _edges(root)}
    ir = {n.path: n.outputs[0].shape for n in r50.nodes if n.path in ("conv1", "fc")}
    assert labels["conv1->bn1"] == ["×".join(str(a.size) for a in ir["conv1"])] == ["N×64×H/2×W/2"]
    assert labels["layer1->layer2"] == ["N×256×H/4×W/4"]
    assert labels["fc->out"] == ["N×1000"]
    bare = _svg(r50, depth=1, shapes=False)
    assert not any(_texts(e) for e in _edges(bare))


def test_broadcast_note_names_the_axes():
    g = graph("""network t() {
        input x: [N, L=16, D=32]
        ln as norm -> linear(8) as fc
    }""")
    root = _svg(g, depth=None)
    norm = next(n for n in _nodes(root) if n.get("id") == "norm")
    assert "[D] over N,L" in _texts(norm)
    fc = next(n for n in _nodes(root) if n.get("id") == "fc")
    assert "[D] over N,L" in _texts(fc)


def test_svg_is_real_text_with_kind_classes(r50):
    data, _ = render(r50, "svg", depth=3)
    root = ET.fromstring(data)
    conv = next(n for n in _nodes(root) if n.get("id") == "conv1")
    assert _classes(conv) == ["node", "conv"]
    assert "7×7 conv, 64, /2" in _texts(conv)
    assert b"glyph" not in data and b"<use" not in data  # text, not outlined glyphs (cairo's svg)
    adds = [n for n in _nodes(root) if "add" in _classes(n)]
    assert adds and all("merge" in _classes(n) for n in adds)


def test_merge_is_named_at_the_join():
    root = _svg(graph(TIED), depth=None)
    texts = {n.get("id"): _texts(n) for n in _nodes(root)}
    assert ["× 0.1"] in texts.values() and ["drop_path 0.1"] in texts.values() and ["concat"] in texts.values()


def test_loops_and_folds_have_badges():
    root = _svg(graph(TIED), depth=1)
    box = next(n for n in _nodes(root) if "loop" in _classes(n))
    assert "×3, shared" in _texts(box)
    assert any("loop" in _classes(e) for e in _edges(root))  # the loop arrow
    assert "×2" in _texts(next(n for n in _nodes(root) if n.get("id") == "stages"))
    deep = _svg(graph(TIED), depth=2)
    assert any("×3, shared" in _texts(el) for el in deep.iter(SVG + "g"))


# ------------------------------------------------------------------ formats, widths, determinism
def test_pdf_embeds_its_fonts(r50):
    import io

    import pypdf  # a test dependency (pyproject [test])
    data, _ = render(r50, "pdf", depth=1, width="single")
    page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
    assert float(page.mediabox.width) <= 252.5
    fonts = page["/Resources"]["/Font"]
    assert len(fonts) >= 1
    for f in fonts.values():
        f = f.get_object()
        desc = (f["/DescendantFonts"][0].get_object() if "/DescendantFonts" in f else f)["/FontDescriptor"]
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(desc.get_object().keys()), f["/BaseFont"]


def test_width_fits_or_says_it_cannot(r50):
    for width, pt in (("single", 252), ("double", 504), ("300", 300)):
        root = ET.fromstring(render(r50, "svg", width=width)[0])
        assert float(root.get("width").rstrip("pt")) <= pt + 0.5
    with pytest.raises(ResdslError) as e:
        render(r50, "svg", depth=None, rankdir="LR", width="single")
    assert "cannot fit" in e.value.message and e.value.help


def test_deterministic_dot_and_svg(tmp_path):
    outs = []
    for seed in ("1", "2"):
        for ext in ("dot", "svg"):
            p = tmp_path / f"{seed}.{ext}"
            env = dict(os.environ, PYTHONHASHSEED=seed)
            subprocess.run([sys.executable, "-m", "resdsl.cli", "render", str(ROOT / "examples" / "cifar_resnet.res"),
                            "--depth", "all", "-o", str(p)], check=True, env=env, capture_output=True)
            outs.append(p.read_bytes())
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert b"Generated by graphviz" not in outs[1]


def test_tikz_is_a_complete_document(r50):
    tex = render(r50, "tex", depth=2)[0].decode()
    assert tex.startswith("%") and "\\documentclass{article}" in tex and "\\usepackage{tikz}" in tex
    assert tex.rstrip().endswith("\\end{document}") and tex.count("\\begin{tikzpicture}") == 1
    body = re.sub(r"\\[{}]", "", tex)
    assert body.count("{") == body.count("}")
    defined = set(re.findall(r"\\definecolor\{(\w+)\}", tex))
    used = set(re.findall(r"(?:draw|fill|text)=(rc\d+)", tex))
    assert used <= defined
    assert "layer3" in tex and "$\\times$" in tex
    assert not re.search(r"[^\x00-\x7f]", tex)  # pdflatex-safe: non-ASCII is escaped
    svg_texts = sum(len(_texts(n)) for n in ET.fromstring(render(r50, "svg", depth=2)[0]).iter(SVG + "g")
                    if {"node", "edge"} & set(_classes(n)))
    assert tex.count("\\node[anchor") >= svg_texts


def test_cli_render_and_errors(tmp_path, capsys):
    out = tmp_path / "r.svg"
    assert main(["render", RESNET, "-n", "resnet18", "-o", str(out), "--depth", "2", "--params"]) == 0
    assert "params" in out.read_text()
    assert main(["render", RESNET, "-n", "resnet18", "-o", str(tmp_path / "r.gif")]) == 2
    assert "help:" in capsys.readouterr().err
    assert main(["render", RESNET, "-n", "resnet18", "-o", str(tmp_path / "r.svg"), "--width", "wide"]) == 2  # usage: exit 2
    png = tmp_path / "r.png"
    assert main(["render", RESNET, "-n", "resnet18", "-o", str(png), "--rankdir", "LR"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ every stdlib network and example
def _all_networks():
    out = []
    for folder in ("stdlib", "examples"):
        for f in sorted((ROOT / folder).glob("*.res")):
            for net, ref in load(str(f)).networks.items():
                defn = getattr(ref, "defn", None)
                if defn is not None and any(p.default is None for p in defn.params):
                    continue  # a generic network (ResNet(block, layers)): drawn through its variants
                # the fast loop draws the first network of each file; -m slow the others
                slow = any(p.values[0] == f"{folder}/{f.name}" for p in out)
                out.append(pytest.param(f"{folder}/{f.name}", net, id=f"{folder}/{f.name}-{net}",
                                        marks=[pytest.mark.slow] if slow else []))
    return out


@pytest.mark.parametrize("path,net", _all_networks())
def test_every_network_renders_without_warnings(path, net):
    g = graph(str(ROOT / path), net)
    for depth in (1, None) if len(g.nodes) <= BIG else (1,):
        for rankdir in ("TB", "LR"):
            data, warn = run_dot(to_dot(g, depth, rankdir), "svg")
            assert warn == "", (depth, rankdir, warn)
            ET.fromstring(data)


def test_a_long_list_argument_is_shown_by_its_ends_in_the_block_title():
    """A block given a table (MOAT's 196 relative-position indices) is titled by the list's ends and
    length: the whole list made titles graphviz refuses (labels stop at 16,384 characters)."""
    src = ("block Table(idx: list) {\n    input x\n    x -> linear(4) as fc\n}\n"
           "network n {\n    input x: [N, 4]\n"
           f"    Table({list(range(3000))}) as t\n}}\n")
    text = resdsl.render(src, depth=2).data.decode()
    assert "[0, 1, 2, …, 2999] (3000)" in text
    assert "2998" not in text
