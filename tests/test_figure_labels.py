"""What the labels of a figure say: one notation for per-iteration values, one frame (and one title)
for a repeat of one folded run, names inside a folded run that do not name one instance; in circuits,
every box labelled where a reader can tell which label is its, and no box for an op that does nothing."""
import re
from xml.etree import ElementTree as ET

import pytest

import resdsl
from resdsl.backends.diagram import block, circuit
from resdsl.backends.diagram.canvas import text_width

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg):
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(SVG + "text")]


def test_one_notation_for_per_iteration_values():
    svg, _ = block.render(resdsl.graph("resnet50"), "svg", depth=1)
    texts = _texts(svg)
    assert "Bottleneck(planes=128, stride=2,1×3)" in texts and "Bottleneck(planes=256, stride=2,1×5)" in texts
    assert not any("1,1" in t for t in texts)  # not 2,1,1,1 beside 2,1×5


def test_a_repeat_of_one_folded_run_is_one_frame_with_names_of_the_run():
    g = resdsl.graph("examples/transformer.res")
    texts2 = _texts(block.render(g, "svg", depth=2)[0])
    assert "blocks · repeat 4" not in texts2 and texts2.count("blocks.0–3") == 1
    texts3 = _texts(block.render(g, "svg", depth=3)[0])
    assert "blocks · repeat 4" not in texts3
    assert "mlp" in texts3 and not any(t.startswith("blocks.0.") for t in texts3)


def test_frame_titles_are_not_crossed_by_edges():
    from resdsl.backends.diagram.overlaps import overlaps
    svg, _ = block.render(resdsl.graph("resnet18"), "svg", depth=3)
    assert "layer1.0–1 · BasicBlock(planes=64)" in _texts(svg)
    assert not [o for o in overlaps(svg) if "·" in o[1].text]


NOOPS = '''
network noops() {
    input x: [1, 8, 4, 4]
    conv(8, 3, padding=1) -> identity -> dropout(0) -> relu -> dropout(0.1) -> identity
}
'''


def test_circuits_hide_ops_that_do_nothing():
    g = resdsl.graph(NOOPS)
    for depth in (1, None):
        svg, _ = circuit.render(g, "svg", depth=depth)
        classes = {el.get("class") for el in ET.fromstring(svg).iter(SVG + "g")}
        texts = _texts(svg)
        assert "node op identity" not in classes and "dropout 0" not in texts
        assert "dropout 0.1" in texts and "relu" in texts  # a dropout that drops is drawn
    svg, _ = circuit.render(resdsl.graph("vit_b_16"), "svg", depth=2)
    assert "dropout 0" not in _texts(svg)


def _row_labels(c):
    """(rect, its label) for every box of a circuit: a text inside it, or the first text right of it on
    its row with no wire between; (rect, None) when neither."""
    rects = [p for p in c.prims if p[0] == "rect" and p[5].startswith(("op ", "block "))]
    texts = [p for p in c.prims if p[0] == "text"]
    wires = [p for p in c.prims if p[0] == "line" and p[1] == p[3]]  # vertical lines
    out = []
    for r in rects:
        _, x, y, w, h = r[:5]
        inside = [t for t in texts if x <= t[1] <= x + w and y <= t[2] <= y + h]
        if inside:
            out.append((r, inside[0]))
            continue
        mid = y + h / 2
        right = sorted((t for t in texts if abs(t[2] - mid) < 5 and t[1] > x + w and t[6] == "l"), key=lambda t: t[1])
        if right:
            t = right[0]
            crossing = [ln for ln in wires if x + w < ln[1] < t[1] and min(ln[2], ln[4]) < mid < max(ln[2], ln[4])]
            out.append((r, None if crossing else t))
        else:
            out.append((r, None))
    return out


@pytest.mark.parametrize("src,net,depth", [("vit_b_16", None, 2), ("stdlib/resmlp.res", "resmlp_12_224", 1),
                                           ("examples/transformer.res", None, 3), ("examples/unet.res", None, 1)])
def test_every_circuit_box_has_a_label_a_reader_can_pair_with_it(src, net, depth):
    c = circuit.layout(resdsl.graph(src, net), depth)
    unlabelled = [r for r, t in _row_labels(c) if t is None]
    assert not unlabelled, unlabelled[:3]
    for r, t in _row_labels(c):  # a name written inside a box fits it
        if r[1] <= t[1] <= r[1] + r[3]:
            assert text_width(t[3], t[4]) <= r[3] + 0.5, (t[3], r[3])
