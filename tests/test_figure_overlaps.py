"""No label collides in any gallery figure: text against text, and text against edges, measured on the
SVG geometry (resdsl/backends/diagram/overlaps.py: text boxes from the renderer's Helvetica metrics
and the font size graphviz writes, edges sampled every half point along their paths)."""
from pathlib import Path

import pytest

from resdsl.backends.diagram.overlaps import geometry, overlaps

ROOT = Path(__file__).resolve().parents[1]
FIGURES = sorted((ROOT / "docs" / "gallery").rglob("*.svg"))


def _svg(texts, paths):
    body = "".join(f'<text text-anchor="start" x="{x}" y="{y}" font-size="10">{t}</text>' for t, x, y in texts)
    edges = "".join(f'<g class="edge"><title>e{i}</title><path d="{d}"/></g>' for i, d in enumerate(paths))
    return (f'<svg xmlns="http://www.w3.org/2000/svg"><g class="graph"><g class="node"><title>n</title>{body}</g>'
            f"{edges}</g></svg>")


def test_the_measure_sees_collisions():
    # two labels on one baseline, 10 pt apart: "relu" is about 18 pt wide at 10 pt
    assert [k for k, *_ in overlaps(_svg([("relu", 0, 0), ("conv", 10, 0)], []))] == ["text/text"]
    assert overlaps(_svg([("relu", 0, 0), ("conv", 30, 0)], [])) == []
    # a line through a label, a curve touching it, and one well clear of it
    assert len(overlaps(_svg([("relu", 0, 0)], ["M9,-20L9,10"]))) == 1
    assert len(overlaps(_svg([("relu", 0, 0)], ["M-10,2.3C0,2.3 10,2.3 20,2.3"]))) == 1  # 0.2 pt below
    assert overlaps(_svg([("relu", 0, 0)], ["M-10,6C0,6 10,6 20,6"])) == []
    boxes, edges = geometry(_svg([("a", 5, 5)], ["M0,0C0,10 0,10 0,20"]))
    assert len(boxes) == 1 and len(edges[0][1]) > 20


def test_the_gallery_is_there():
    assert len(FIGURES) >= 100 and any("circuit" in str(f) for f in FIGURES)


@pytest.mark.parametrize("svg", FIGURES, ids=[str(f.relative_to(ROOT / "docs" / "gallery")) for f in FIGURES])
def test_no_label_collides_in_the_gallery(svg):
    found = overlaps(svg.read_bytes())
    assert not found, "\n".join(f"{k}: {a!r} / {b!r}" for k, a, b in found[:10])
