"""DOT source of the block diagram: a View (view) emitted through the `graphviz` package, with
HTML-like labels, palette colours, SVG classes and ids, the main-path group and loop arrows."""
from __future__ import annotations

from .labels import (
    BADGE,
    FONT,
    GREY,
    PALETTE,
    html_text,
    loop_call,
    sizes_of,
    axes_note,
    block_call,
    family,
    op_text,
    repeat_call,
    shape_label,
)
from .canvas import text_width
from .dotsrc import Graph, Html, svg_id
from .view import View, within, display_name

EDGE_PAD = 2  # pt of clear space around an edge's label and an input's or output's name
from ..summary import si


def _edge_label(text, color=None):
    """An edge's label in a cell padded on every side: the text keeps clear of its own line."""
    t = html_text(text) if color is None else f'<FONT COLOR="{color}">{html_text(text)}</FONT>'
    return Html(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="{EDGE_PAD}"><TR><TD>{t}</TD></TR>'
                "</TABLE>")


def _html_label(title, sub="", badge="", note="", extra="", bold=False, title_size=None, pad=0):
    t = html_text(title)
    if bold:
        t = f"<B>{t}</B>"
    if title_size:
        t = f'<FONT POINT-SIZE="{title_size}">{t}</FONT>'
    rows = []
    if badge:
        # a gap of 4 pt, and room for bold text that graphviz's font estimate may measure narrower
        gap = 4 + (round(0.1 * text_width(title, float(title_size or 10))) if bold else 0)
        rows.append(f'<TR><TD>{t}</TD><TD WIDTH="{gap}"></TD>'
                    f'<TD><FONT COLOR="{BADGE}"><B>{html_text(badge)}</B></FONT></TD></TR>')
        span = ' COLSPAN="3"'
    else:
        rows.append(f"<TR><TD>{t}</TD></TR>")
        span = ""
    for line, color in ((sub, "#222222"), (note, GREY), (extra, GREY)):
        if line:
            rows.append(f'<TR><TD{span}><FONT POINT-SIZE="8" COLOR="{color}">{html_text(line)}</FONT></TD></TR>')
    return Html(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="{pad}">' + "".join(rows)
                + "</TABLE>")


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
            a.update(shape="plain", style="", label=_html_label(it.name, bold=True, pad=EDGE_PAD),
                     **{"class": it.kind})
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
            title, sub = it.name or display_name(view, s), block_call(s)
        elif s.kind == "repeat":
            title, sub = display_name(view, s), repeat_call(s) or "repeat"
        elif s.kind == "loop":
            title, sub = display_name(view, s), loop_call(s)
        elif s.kind == "network":
            title, sub = g.name, (s.info.get("block") if s.info.get("block") != g.name else "")
        else:
            title, sub = display_name(view, s), repeat_call(s) if it.badge else ""
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
        if not c.children and len(c.items) == 1 and view.items[c.items[0]].badge:
            # a repeat around its one folded, badged box: the box says it all
            parent.node(c.items[0], **item_attrs(view.items[c.items[0]]))
            return
        if not c.items and len(c.children) == 1:
            # a frame around one frame only (a repeat around its one folded run, `blocks.0–3 ×4`):
            # the inner one says it all; one frame, one title
            emit_cluster(parent, c.children[0])
            return
        with parent.subgraph(ckey) as sg:
            sg.attr(id=svg_id("scope:" + ckey[len("cluster_"):]), style="rounded,dashed" if c.cls in (
                "repeat", "loop", "fold") else "rounded,filled", color="#9aa7b4", fillcolor="#f7f9fb",
                    fontsize="8", penwidth="0.7", **{"class": f"cluster {c.cls}"})
            # the title is a node of its own on the frame's first rank, not the cluster's label: dot
            # routes edges around nodes, while the edges entering a frame crossed its label
            title = f'title"{ckey}'  # `"` is in no name: no item has this key
            sg.node(title, shape="plain", style="", label=_html_label(c.label, badge=c.badge, title_size="8",
                                                                      pad=EDGE_PAD),
                    id=svg_id("title:" + ckey[len("cluster_"):]), **{"class": f"title {c.cls}"})
            titles.append((title, _first_item(ckey)))
            for k in c.items:
                sg.node(k, **item_attrs(view.items[k]))
            for ch in c.children:
                emit_cluster(sg, ch)

    def _first_item(ckey):
        c = view.clusters[ckey]
        keys = list(c.items) + [_first_item(ch) for ch in c.children]
        return min(keys, key=lambda k: view.items[k].order)

    titles = []
    for it in view.items.values():
        if not it.clusters:
            d.node(it.key, **item_attrs(it))
    for ck in view.top_clusters:
        emit_cluster(d, ck)
    # a title sits on a rank of its own at the top of its frame: below everything that feeds the
    # frame, above every item that is fed from outside; nested frames stack titles, outer above inner
    entries = {}
    for title, _first in titles:
        ckey = title[len('title"'):]
        inside = {k for k, it in view.items.items() if ckey in it.clusters}
        into = [(src, dst) for src, dst, _v, _c in view.edges if dst in inside and src not in inside]
        entries[title] = {dst for _s, dst in into} or {_first}
        for src in dict.fromkeys(src for src, _d in into):
            d.edge(src, title, style="invis", weight="0")
        for dst in sorted(entries[title], key=lambda k: view.items[k].order):
            d.edge(title, dst, style="invis", weight="0")
    for (ta, _fa), (tb, _fb) in zip(titles, titles[1:]):
        if tb[len('title"'):] in view.clusters[ta[len('title"'):]].children and entries[ta] & entries[tb]:
            d.edge(ta, tb, style="invis", weight="0")
    for src, dst, v, cls in view.edges:
        a = {}
        si_ = view.items[src]
        if shapes and v is not None and (si_.kind == "input" or si_.in_shape is None or
                                          sizes_of(si_.in_shape) != sizes_of(v.shape)):
            a["label"] = _edge_label(shape_label(v.shape))
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
            a.update(label=_edge_label(label, BADGE))
        if src == dst:
            a.update(dir="forward")
        d.edge(src, dst, **a)
    return d.source


def _scope_nodes(g, s):
    return [n for n in g.nodes if within(n.scope, s)]
