"""DOT source of the block diagram: a View (view) emitted through the `graphviz` package, with
HTML-like labels, palette colours, SVG classes and ids, the main-path group and loop arrows."""
from __future__ import annotations

from .labels import (
    BADGE,
    FONT,
    GREY,
    PALETTE,
    _e,
    _loop_call,
    _sizes,
    axes_note,
    block_call,
    family,
    op_text,
    repeat_call,
    shape_label,
)
from .dotsrc import Graph, Html, svg_id
from .view import View, _within
from ..summary import si


def _html_label(title, sub="", badge="", note="", extra="", bold=False, title_size=None):
    t = _e(title)
    if bold:
        t = f"<B>{t}</B>"
    if title_size:
        t = f'<FONT POINT-SIZE="{title_size}">{t}</FONT>'
    rows = []
    if badge:
        rows.append(f'<TR><TD>{t}</TD><TD WIDTH="4"></TD>'
                    f'<TD><FONT COLOR="{BADGE}"><B>{_e(badge)}</B></FONT></TD></TR>')
        span = ' COLSPAN="3"'
    else:
        rows.append(f"<TR><TD>{t}</TD></TR>")
        span = ""
    for line, color in ((sub, "#222222"), (note, GREY), (extra, GREY)):
        if line:
            rows.append(f'<TR><TD{span}><FONT POINT-SIZE="8" COLOR="{color}">{_e(line)}</FONT></TD></TR>')
    return Html('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">' + "".join(rows) + "</TABLE>")


def to_dot(g, depth: int | None = 1, rankdir: str = "TB", shapes: bool = True, params: bool = False,
           size_in: tuple | None = None) -> str:
    """DOT source of the diagram (deterministic)."""
    view = View(g, depth)
    d = Graph(g.name, graph_attr={
        "rankdir": rankdir, "fontname": FONT, "fontsize": "9", "nodesep": "0.18", "ranksep": "0.22",
        "newrank": "true", "labeljust": "l", "margin": "0.05", "pad": "0.04", "bgcolor": "white",
        "outputorder": "edgesfirst", "id": svg_id(g.name),
    }, node_attr={
        "fontname": FONT, "fontsize": "10", "shape": "box", "style": "rounded,filled", "height": "0.26",
        "margin": "0.07,0.03", "penwidth": "0.8",
    }, edge_attr={
        "fontname": FONT, "fontsize": "8", "fontcolor": GREY, "color": "#333333", "arrowsize": "0.55",
        "penwidth": "0.8",
    })
    if size_in is not None:  # (width, height) in inches: dot scales the drawing down to fit both
        d.attr(size=f"{size_in[0]:.4f},{size_in[1]:.4f}".replace(",1000.0000", ",1000"))
    pc = view.params
    side_groups = {}

    def item_attrs(it):
        key = it.key
        a = {"id": svg_id(key)}
        if it.key in view.main:
            a["group"] = "main"
        elif it.kind == "op":
            sc = next((s for s in it.node.scope.ancestors() if s.kind in ("shortcut", "branch")), None)
            if sc is not None:  # a shortcut or a parallel branch: straight too, beside the main path
                a["group"] = side_groups.setdefault(id(sc), f"side{len(side_groups)}")
        if it.kind in ("input", "output"):
            a.update(shape="plain", style="", label=_html_label(it.name, bold=True), **{"class": it.kind})
            return a
        if it.kind == "op":
            n = it.node
            fam = family(n.op)
            fill, stroke = PALETTE[fam]
            extra = f"{pc[id(n)]:,} params" if params and pc.get(id(n)) else ""
            if fam == "merge":
                a.update(shape="ellipse", style="filled", height="0.22", margin="0.02,0.01")
            a.update(fillcolor=fill, color=stroke, label=_html_label(op_text(n), note=axes_note(n), extra=extra),
                     **{"class": fam if fam == n.op else f"{fam} {n.op}"})
            return a
        s = it.scope
        fill, stroke = PALETTE["block"]
        if s.kind == "block":
            title, sub = it.name or s.path or s.name, block_call(s)
        elif s.kind == "repeat":
            title, sub = s.path or s.name, repeat_call(s) or "repeat"
        elif s.kind == "loop":
            title, sub = s.path or s.name, _loop_call(s)
        elif s.kind == "network":
            title, sub = g.name, (s.info.get("block") if s.info.get("block") != g.name else "")
        else:
            title, sub = s.path or s.name, repeat_call(s) if it.badge else ""
        extra = ""
        if params:
            n_p = sum(pc[id(n)] for n in _scope_nodes(g, s))
            extra = f"{si(n_p)} params"
        a.update(fillcolor=fill, color=stroke, style="filled", penwidth="1.1",
                 label=_html_label(title, sub, badge=it.badge, extra=extra, bold=True),
                 **{"class": f"block {s.kind}" if s.kind != "block" else "block"})
        if s.kind == "repeat" or it.badge:
            a["peripheries"] = "2"
        return a

    def emit_cluster(parent, ckey):
        c = view.clusters[ckey]
        with parent.subgraph(ckey) as sg:
            label = _html_label(c.label, badge=c.badge, title_size="8")
            sg.attr(label=label, id=svg_id("scope:" + ckey[len("cluster_"):]), style="rounded,dashed" if c.cls in (
                "repeat", "loop", "fold") else "rounded,filled", color="#9aa7b4", fillcolor="#f7f9fb",
                    fontsize="8", penwidth="0.7", **{"class": f"cluster {c.cls}"})
            for k in c.items:
                sg.node(k, **item_attrs(view.items[k]))
            for ch in c.children:
                emit_cluster(sg, ch)

    for it in view.items.values():
        if not it.clusters:
            d.node(it.key, **item_attrs(it))
    for ck in view.top_clusters:
        emit_cluster(d, ck)
    for src, dst, v, cls in view.edges:
        a = {}
        si_ = view.items[src]
        if shapes and v is not None and (si_.kind == "input" or si_.in_shape is None or
                                          _sizes(si_.in_shape) != _sizes(v.shape)):
            a["label"] = shape_label(v.shape)
        if cls == "skip":
            a.update(color="#7a7a7a", weight="1", **{"class": "skip"})
        elif src in view.main and dst in view.main:
            a.update(weight="8", **{"class": cls})
        else:
            a.update(weight="2", **{"class": cls})
        d.edge(src, dst, **a)
    for src, dst, label in view.loop_edges:
        a = {"constraint": "false", "color": BADGE, "style": "dashed", "class": "loop"}
        if label:
            a.update(label=label, fontcolor=BADGE)
        if src == dst:
            a.update(dir="forward")
        d.edge(src, dst, **a)
    return d.source


def _scope_nodes(g, s):
    return [n for n in g.nodes if _within(n.scope, s)]
