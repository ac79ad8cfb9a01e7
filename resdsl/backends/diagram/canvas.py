"""Drawing primitives of the circuit diagrams and their two outputs: pinned DOT (for the graphviz
binary: SVG, PDF, PNG) and TikZ. Coordinates are points, y down; see circuit.py for the layout."""
from __future__ import annotations

from .labels import FONT
from .tikz import tex_escape, tikz_document
from .dotsrc import quote

WIRE = "#222222"
FS = 8.0           # labels of ops

# Helvetica advance widths (1/1000 em), to size labels without a font library
_W = dict(zip(" .,/:;[]()-'*+=_|!", [278, 278, 278, 278, 278, 278, 278, 278, 333, 333, 333, 191, 389, 584, 584,
                                      556, 260, 278]))
_W.update(dict(zip("abcdefghijklmnopqrstuvwxyz", [556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833,
                                                   556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500])))
_W.update(dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
                                                   722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611])))
_W.update({d: 556 for d in "0123456789"})
_W.update({"×": 584, "·": 278, "–": 556, "→": 1000, "α": 578, "γ": 500, "θ": 556, "…": 1000})


def text_width(s: str, size: float, bold: bool = False) -> float:
    return sum(_W.get(c, 600) for c in s) * size / 1000.0 * (1.1 if bold else 1.0)


def _node_w(w: float) -> float:
    """Width of the DOT node holding a text `w` wide: graphviz's own font estimate runs up to ~10 % wider."""
    return w * 1.12 + 2.0


# ------------------------------------------------------------------ primitives
class Canvas:
    """Primitives in points, y down: lines, rects, circles, dots, texts (each with an SVG class)."""

    def __init__(self):
        self.prims = []

    def line(self, x1, y1, x2, y2, cls="wire", color=WIRE, width=0.9, dashed=False):
        if (x1, y1) != (x2, y2):
            self.prims.append(("line", x1, y1, x2, y2, cls, color, width, dashed))

    def rect(self, x, y, w, h, cls, fill="#ffffff", stroke=WIRE, width=0.8, rounded=True, dashed=False,
             peripheries=1):
        self.prims.append(("rect", x, y, w, h, cls, fill, stroke, width, rounded, dashed, peripheries))

    def circle(self, x, y, r, cls, text="", fill="#ffffff", stroke=WIRE):
        self.prims.append(("circle", x, y, r, cls, text, fill, stroke))

    def dot(self, x, y, cls="dot", r=1.5, color=WIRE):
        self.prims.append(("dot", x, y, r, cls, color))

    def text(self, x, y, s, size=FS, color="#111111", anchor="l", bold=False, cls="label"):
        """`y` is the text's vertical middle; anchor l/c/r."""
        if s:
            self.prims.append(("text", x, y, s, size, color, anchor, bold, cls))

    def extent(self):
        x1 = y1 = 0.0
        for p in self.prims:
            k = p[0]
            if k == "line":
                x1, y1 = max(x1, p[1], p[3]), max(y1, p[2], p[4])
            elif k == "rect":
                x1, y1 = max(x1, p[1] + p[3]), max(y1, p[2] + p[4])
            elif k in ("circle", "dot"):
                x1, y1 = max(x1, p[1] + p[3]), max(y1, p[2] + p[3])
            elif k == "text":
                w = text_width(p[3], p[4], p[7])
                cx = p[1] + {"l": w / 2, "c": 0.0, "r": -w / 2}[p[6]]
                right = cx + _node_w(w) / 2  # the DOT text node is a little wider than the text
                x1, y1 = max(x1, right), max(y1, p[2] + p[4] / 2)
        return x1, y1


# ------------------------------------------------------------------ output
def _f(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _html(s: str) -> str:
    import html
    return html.escape(s, quote=True)


def to_dot(c: Canvas, name: str) -> str:
    """DOT with every node pinned (render with `neato -n2`); lines are edges between invisible points."""
    H = c.height
    out = [f'digraph {quote(name)} {{',
           f'  graph [bb="0,0,{_f(c.width)},{_f(H)}", splines=line, outputorder=edgesfirst, pad=0, margin=0, '
           f'bgcolor=white, id={quote(name)}];',
           f'  node [label="", fixedsize=true, fontname="{FONT}", margin=0, penwidth=0.8];',
           '  edge [dir=none, arrowhead=none, arrowtail=none];']
    pts = {}
    # two invisible corners pin the bounding box: the page is exactly the drawing's size
    # (a point node is 0.72 pt across: its centre sits half that inside the corner)
    out.append('  corner0 [shape=point, width=0.01, height=0.01, style=invis, pos="0.36,0.36!"];')
    out.append(f'  corner1 [shape=point, width=0.01, height=0.01, style=invis, '
               f'pos="{_f(c.width - 0.36)},{_f(H - 0.36)}!"];')

    def pt(x, y):
        k = (_f(x), _f(H - y))
        if k not in pts:
            pts[k] = f"p{len(pts)}"
            out.append(f'  {pts[k]} [shape=point, width=0.01, height=0.01, style=invis, pos="{k[0]},{k[1]}!"];')
        return pts[k]

    nid = [0]

    def node(x, y, attrs):
        nid[0] += 1
        out.append(f'  n{nid[0]} [pos="{_f(x)},{_f(H - y)}!", {attrs}];')

    def inch(v):
        return f"{v / 72.0:.4f}"

    for p in c.prims:
        k = p[0]
        if k == "line":
            _, x1, y1, x2, y2, cls, color, width, dashed = p
            a, b = pt(x1, y1), pt(x2, y2)
            st = ', style=dashed' if dashed else ''
            out.append(f'  {a} -> {b} [class="{cls}", color="{color}", penwidth={_f(width)}{st}];')
        elif k == "rect":
            _, x, y, w, h, cls, fill, stroke, width, rounded, dashed, per = p
            style = ",".join(s for s, on in (("rounded", rounded), ("dashed", dashed), ("filled", fill != "none"))
                             if on)
            extra = f', fillcolor="{fill}"' if fill != "none" else ""
            extra += f", peripheries={per}" if per != 1 else ""
            node(x + w / 2, y + h / 2, f'shape=box, class="{cls}", width={inch(w)}, height={inch(h)}, '
                                       f'style="{style}", color="{stroke}", penwidth={_f(width)}{extra}')
        elif k == "circle":
            _, x, y, r, cls, text, fill, stroke = p
            node(x, y, f'shape=circle, class="{cls}", width={inch(2 * r)}, style=filled, fillcolor="{fill}", '
                       f'color="{stroke}", penwidth=0.7, fontsize=7, label={quote(text)}')
        elif k == "dot":
            _, x, y, r, cls, color = p
            node(x, y, f'shape=circle, class="{cls}", width={inch(2 * r)}, style=filled, fillcolor="{color}", '
                       f'color="{color}", penwidth=0')
        elif k == "text":
            _, x, y, s, size, color, anchor, bold, cls = p
            w = text_width(s, size, bold)
            cx = x + {"l": w / 2, "c": 0.0, "r": -w / 2}[anchor]
            t = _html(s)
            lab = f"<<B>{t}</B>>" if bold else f"<{t}>"
            node(cx, y, f'shape=plaintext, class="{cls}", width={inch(_node_w(w))}, height={inch(size * 1.5)}, '
                        f'fontsize={_f(size)}, fontcolor="{color}", label={lab}')
    out.append("}")
    return "\n".join(out) + "\n"


def to_tikz(c: Canvas, name: str) -> str:
    """A standalone LaTeX file (pdflatex, TikZ) drawing the same primitives."""
    H = c.height
    colors = {}

    def col(h):
        h = h.lower()
        if h not in colors:
            colors[h] = f"nc{len(colors)}"
        return colors[h]

    def P(x, y):
        return f"({_f(x)},{_f(H - y)})"

    body = []
    # TikZ paints in order: frames, then wires, then boxes over them, then text (as graphviz's edgesfirst)
    layer = {"line": 1, "rect": 2, "circle": 3, "dot": 3, "text": 4}
    prims = sorted(c.prims, key=lambda p: 0 if p[0] == "rect" and p[5] == "frame" else layer[p[0]])
    for p in prims:
        k = p[0]
        if k == "line":
            _, x1, y1, x2, y2, cls, color, width, dashed = p
            d = ",dashed" if dashed else ""
            body.append(f"\\draw[draw={col(color)},line width={_f(width)}pt{d}] {P(x1, y1)} -- {P(x2, y2)};")
        elif k == "rect":
            _, x, y, w, h, cls, fill, stroke, width, rounded, dashed, per = p
            o = [f"draw={col(stroke)}", f"line width={_f(width)}pt"]
            if fill != "none":
                o.append(f"fill={col(fill)}")
            if rounded:
                o.append("rounded corners=2pt")
            if dashed:
                o.append("dashed")
            if per == 2:
                body.append(f"\\draw[{o[0]},{o[1]}{',rounded corners=3pt' if rounded else ''}] "
                            f"{P(x - 2, y - 2)} rectangle {P(x + w + 2, y + h + 2)};")
            body.append(f"\\path[{','.join(o)}] {P(x, y)} rectangle {P(x + w, y + h)};")
        elif k == "circle":
            _, x, y, r, cls, text, fill, stroke = p
            body.append(f"\\path[draw={col(stroke)},fill={col(fill)},line width=0.7pt] {P(x, y)} circle ({_f(r)}pt);")
            if text:
                body.append(f"\\node[inner sep=0pt,font=\\fontsize{{7}}{{8}}\\selectfont] at {P(x, y)} "
                            f"{{{tex_escape(text)}}};")
        elif k == "dot":
            _, x, y, r, cls, color = p
            body.append(f"\\fill[{col(color)}] {P(x, y)} circle ({_f(r)}pt);")
        elif k == "text":
            _, x, y, s, size, color, anchor, bold, cls = p
            t = tex_escape(s)
            if bold:
                t = f"\\textbf{{{t}}}"
            a = {"l": "west", "c": "center", "r": "east"}[anchor]
            body.append(f"\\node[anchor={a},inner sep=0pt,text={col(color)},"
                        f"font=\\fontsize{{{_f(size)}}}{{{_f(size * 1.2)}}}\\selectfont] at {P(x, y)} {{{t}}};")
    defs = [f"\\definecolor{{{v}}}{{HTML}}{{{k[1:].upper()}}}" for k, v in colors.items()]
    return tikz_document(f"{tex_escape(name)}: neural circuit diagram drawn by resdsl render --style circuit "
                         "(TikZ).", c.width + 8, c.height + 8, defs, body)
