"""Label collisions measured on a rendered SVG (graphviz's output, either style).

Every ``<text>`` becomes a box: its width from the same Helvetica advance widths the renderer
sizes labels with (``canvas.text_width``; bold 10 % wider), its height from the font size
(Helvetica's ascender 0.718 em above the baseline, descender 0.207 em below). Every edge
(``<g class="edge ...">``: its paths and arrowheads) is sampled every half point along its
segments and Bézier curves. Two findings:

* ``text/text``: two text boxes that intersect (by more than ``TEXT_SLACK`` in each direction);
* ``text/edge``: an edge point inside a text box grown by ``EDGE_GAP`` (a line touching or
  crossing a label: a shape label on its own edge, a skip through a cluster title).

`overlaps(svg)` returns the findings; tests/test_figure_overlaps.py runs it on every figure of
docs/gallery and wants none.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .canvas import text_width

ASCENT, DESCENT = 0.718, 0.207   # Helvetica, em
TEXT_SLACK = 0.3                 # pt two text boxes may share (rounding of graphviz's coordinates)
EDGE_GAP = 0.5                   # pt of clear space wanted between a label and a line
STEP = 0.5                       # pt between samples of an edge

_NS = "{http://www.w3.org/2000/svg}"
_NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


class Box:
    __slots__ = ("x0", "y0", "x1", "y1", "text", "where")

    def __init__(self, x0, y0, x1, y1, text, where):
        self.x0, self.y0, self.x1, self.y1, self.text, self.where = x0, y0, x1, y1, text, where

    def __repr__(self):
        return f"{self.text!r} [{self.x0:.1f},{self.y0:.1f} {self.x1:.1f},{self.y1:.1f}] in {self.where}"


def _title(g) -> str:
    t = g.find(_NS + "title")
    return t.text if t is not None and t.text else g.get("id", "?")


def _text_box(el, where) -> Box | None:
    s = "".join(el.itertext())
    if not s.strip():
        return None
    size = float(el.get("font-size", "14"))
    w = text_width(s, size, el.get("font-weight") == "bold")
    x, y = float(el.get("x")), float(el.get("y"))
    anchor = el.get("text-anchor", "start")
    x0 = x - {"start": 0.0, "middle": w / 2, "end": w}[anchor]
    return Box(x0, y - ASCENT * size, x0 + w, y + DESCENT * size, s, where)


def _bezier(p0, p1, p2, p3):
    import math
    n = max(2, int(math.dist(p0, p1) + math.dist(p1, p2) + math.dist(p2, p3)) * int(1 / STEP) + 1)
    for k in range(n + 1):
        t = k / n
        u = 1 - t
        yield (u * u * u * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t * t * t * p3[0],
               u * u * u * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t * t * t * p3[1])


def _segment(a, b):
    import math
    n = max(1, int(math.dist(a, b) / STEP) + 1)
    for k in range(n + 1):
        t = k / n
        yield (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _path_points(d: str):
    """Points along a graphviz path: absolute M, C and L commands."""
    pts = []
    for cmd, args in re.findall(r"([MCL])([^MCL]*)", d):
        nums = [float(v) for v in _NUM.findall(args)]
        xy = list(zip(nums[0::2], nums[1::2]))
        if cmd == "M":
            pts.append(("M", xy[0]))
            for p in xy[1:]:
                pts.append(("L", p))
        elif cmd == "L":
            pts += [("L", p) for p in xy]
        else:
            for i in range(0, len(xy) - 2, 3):
                pts.append(("C", (xy[i], xy[i + 1], xy[i + 2])))
    cur = None
    for kind, p in pts:
        if kind == "M":
            cur = p
            yield p
        elif kind == "L":
            yield from _segment(cur, p)
            cur = p
        else:
            yield from _bezier(cur, *p)
            cur = p[2]


def _polygon_points(points: str):
    nums = [float(v) for v in _NUM.findall(points)]
    xy = list(zip(nums[0::2], nums[1::2]))
    for a, b in zip(xy, xy[1:]):
        yield from _segment(a, b)


def geometry(svg: bytes | str) -> tuple[list, list]:
    """(text boxes, edges as (name, [points])) of a graphviz SVG, in its own coordinates."""
    root = ET.fromstring(svg)
    boxes, edges = [], []
    for g in root.iter(_NS + "g"):
        cls = (g.get("class") or "").split()
        if not cls or cls[0] not in ("node", "edge", "cluster", "graph"):
            continue
        where = f"{cls[0]} {_title(g)}"
        for el in g:
            if el.tag == _NS + "text":
                b = _text_box(el, where)
                if b is not None:
                    boxes.append(b)
            elif el.tag == _NS + "a":  # graphviz wraps the labels of linked objects
                for t in el.iter(_NS + "text"):
                    b = _text_box(t, where)
                    if b is not None:
                        boxes.append(b)
        if cls[0] == "edge":
            pts = []
            for el in g.iter():
                if el.tag == _NS + "path":
                    pts.extend(_path_points(el.get("d", "")))
                elif el.tag == _NS + "polygon":
                    pts.extend(_polygon_points(el.get("points", "")))
            edges.append((where, pts))
    return boxes, edges


def overlaps(svg: bytes | str) -> list[tuple[str, object, object]]:
    """Every collision: ("text/text", box, box) or ("text/edge", box, edge name)."""
    boxes, edges = geometry(svg)
    found = []
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].x0)
    for a_i, i in enumerate(order):  # sweep along x
        a = boxes[i]
        for j in order[a_i + 1:]:
            b = boxes[j]
            if b.x0 >= a.x1 - TEXT_SLACK:
                break
            if min(a.y1, b.y1) - max(a.y0, b.y0) > TEXT_SLACK and min(a.x1, b.x1) - max(a.x0, b.x0) > TEXT_SLACK:
                found.append(("text/text", a, b))
    for name, pts in edges:
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        ex0, ex1, ey0, ey1 = min(xs), max(xs), min(ys), max(ys)
        for b in boxes:
            x0, y0, x1, y1 = b.x0 - EDGE_GAP, b.y0 - EDGE_GAP, b.x1 + EDGE_GAP, b.y1 + EDGE_GAP
            if ex1 < x0 or ex0 > x1 or ey1 < y0 or ey0 > y1:
                continue
            if any(x0 < x < x1 and y0 < y < y1 for x, y in pts):
                found.append(("text/edge", b, name))
    return found
