"""IR -> neural circuit diagram (Abbott, "Neural Circuit Diagrams", TMLR 2024), top to bottom.

The notation, drawn from the IR's named axes:

* **Wires are axes.** A tensor is a bundle of vertical wires, one per axis, labelled
  with its name and size at the top (``D`` / ``32``); where an op changes an axis,
  the new size is written under it.
* **A box covers exactly the axes its op acts on**; the axes it is broadcast over pass
  by. ``linear`` on ``[N, L, D]`` is a box on the ``D`` wire with ``N`` and ``L`` going
  past; a conv covers ``C, H, W`` with ``N`` passing; attention covers ``L, D``; a
  reduction (``mean(dim=1)``, ``select``) ends the wires it removes. An elementwise op
  (``relu``) acts on no axis: a small box beside the bundle, every wire passing.
* **Regrouping** (flatten, permute, reshape, rearrange) is drawn as wires moving:
  lines from each input axis to the output axes it becomes.
* **Copies and merges.** A value needed later is copied: a bar with a dot on every
  wire, and the copy runs down a *lane* on the left (a thin bundle, one line per axis).
  A merge takes a lane back: ``add`` as a circled ``+`` with a dot on every wire,
  ``concat`` into the box on its axis. A residual is thus the copy, the branch and the add.
* **Levels** as in the block charts (``--depth``): a collapsed block, repeat or loop is
  one box across the whole bundle, with the ``×n`` badge; open ones are dashed frames.

The layout is computed here (rows top to bottom, lanes left, labels right) and
emitted twice from one list of primitives: as DOT with pinned positions (the
graphviz binary, ``neato -n2``, renders SVG, PDF and PNG) and as TikZ. Same graph,
same bytes.
"""
from __future__ import annotations

from ...diagnostics import ResdslError
from ...ir import ops as O
from .canvas import FS, Canvas, text_width, to_dot, to_tikz
from .view import display_name
from .block import (BADGE, pdf_date, PAGE_HEIGHT, PALETTE, View, clean_svg, loop_call, block_call, family,
                    op_text, parse_page, repeat_call, run_dot)

FORMATS = ("svg", "pdf", "png", "dot", "tex")
WS = 21.0          # wire pitch (pt)
LANE_PITCH = 11.0  # one lane per held copy
LANE_LINE = 1.7    # spacing of the lines of a lane bundle
BOX_H = 11.0
ROW_GAP = 7.0
FS_SMALL = 7.0     # axis sizes, frame titles: the smallest text, 7 pt at 100 %
LANE = "#7a7a7a"
FRAME = "#8a9bb0"
GREY = "#555555"

# ------------------------------------------------------------------ what an op does to the axes
def acted_axes(n, r: int):
    """Indices of the input axes op `n` acts on (the others are broadcast), or None for 'all':
    the `axes` rule of the op's record (an op with the `elementwise` trait acts on none)."""
    if r == 0:
        return []
    return n.opdef.axes(n, r)


def regroups(n) -> bool:
    """A layout op drawn as wires moving (flatten, permute, reshape, rearrange, transpose)."""
    return isinstance(n.opdef.axes, O.Regroup)


def block_axes(nodes, shape):
    """The axes a collapsed level acts on: the union over its ops, when none of them changes the rank
    (an MLP on [N, L, D] acts on D only; N and L pass by its box). None: the whole bundle."""
    r, acts = len(shape), set()
    for n in nodes:
        if n.op == "param":  # a learned tensor enters the box; it is not an axis of the data
            continue
        if n.op in ("add", "mul") and all(len(v.shape) == r for v in n.outputs):
            continue  # elementwise, also with a broadcast parameter ([D] scaling [N, L, D])
        if regroups(n) or any(len(v.shape) != r for v in list(n.inputs) + list(n.outputs)):
            return None
        a = acted_axes(n, r)
        if a is None:
            return None
        acts.update(a)
    return sorted(acts) or None


def regroup_map(n, rin: int, rout: int):
    """(input axis, output axis) pairs for a layout op: which wires become which (its record's rule)."""
    return n.opdef.axes.pairs(n, rin, rout)


def _ax(a) -> tuple:
    return (a.name or "", str(a.size))


# ------------------------------------------------------------------ layout
def _wrap(s: str, size: float, limit: float) -> list:
    """Break a call `Block(a=1, b=2, ...)` after commas so each line fits `limit` points."""
    if text_width(s, size) <= limit:
        return [s]
    lines, cur = [], ""
    for part in s.split(", "):
        cand = part if not cur else cur + ", " + part
        if cur and text_width(cand + ",", size) > limit:
            lines.append(cur + ",")
            cur = part
        else:
            cur = cand
    return lines + [cur]


class _Layout:
    """One pass over the view's items, top to bottom; `nlanes` (from a first pass) places the wires."""

    def __init__(self, view, g, nlanes: int, levels: int):
        self.view, self.g, self.c = view, g, Canvas()
        self.levels = levels
        self.lx0 = 5.0 + levels * 3.0
        self.x0 = self.lx0 + nlanes * LANE_PITCH + (6.0 if nlanes else 2.0) + 6.0
        self.max_lanes = 0
        self.y = 4.0
        self.main = None            # vid on the wires
        self.shape = ()             # its axes
        self.wstart = []            # y where each wire's open segment starts (None: closed)
        self.lanes = []             # [vid, shape, ystart] or None
        self.frames = []            # (level, y0, y1, title, badge)
        self.open_frames = []       # [cluster key, level, y0, title, badge]
        self.right = 0.0

    # ---- geometry
    def wx(self, i):
        return self.x0 + i * WS

    def lx(self, j):
        return self.lx0 + j * LANE_PITCH

    def lane_lines(self, j, k):
        return [self.lx(j) + (t - (k - 1) / 2) * LANE_LINE for t in range(k)]

    def label_x(self, r):
        return self.wx(max(r, 1) - 1) + 11.0

    # ---- wires and lanes
    def close_wires(self, y, idxs=None):
        for i in (range(len(self.wstart)) if idxs is None else idxs):
            if self.wstart[i] is not None:
                self.c.line(self.wx(i), self.wstart[i], self.wx(i), y)
                self.wstart[i] = None

    def open_wires(self, y, idxs=None, r=None):
        if r is not None:
            self.wstart = (self.wstart + [None] * r)[:r]
        for i in (range(len(self.wstart)) if idxs is None else idxs):
            self.wstart[i] = y

    def lane_of(self, vid):
        return next((j for j, s in enumerate(self.lanes) if s and s[0] == vid), None)

    def lane_alloc(self, vid, shape, y):
        j = next((j for j, s in enumerate(self.lanes) if s is None), len(self.lanes))
        if j == len(self.lanes):
            self.lanes.append(None)
        self.lanes[j] = [vid, shape, y]
        self.max_lanes = max(self.max_lanes, len(self.lanes))
        return j

    def lane_close(self, j, y):
        vid, shape, y0 = self.lanes[j]
        for x in self.lane_lines(j, max(len(shape), 1)):
            self.c.line(x, y0, x, y, cls="lane", color=LANE, width=0.6)
        self.lanes[j] = None

    def size_labels(self, y, before, after, idxs=None, force=False):
        """Inline labels under a box for the axes whose name or size changed; returns the height used."""
        used = False
        for i, a in enumerate(after):
            if idxs is not None and i not in idxs:
                continue
            b = before[i] if i < len(before) else None
            if not force and b is not None and _ax(b) == _ax(a):
                continue
            name, size = _ax(a)
            t = size if (b is not None and name == _ax(b)[0] and not force) or not name else \
                (name if name == size else f"{name} {size}")
            self.c.text(self.wx(i), y + 4.5, t, FS_SMALL, GREY, "c", cls="axis size")
            used = True
        return 9.0 if used else 0.0

    # ---- rows
    def move(self, y, pairs, r_out, h=9.0, src=None):
        """Wires (or lane lines `src`) go from their x to new wire positions between y and y+h."""
        for i, j in pairs:
            x1 = src[i] if src is not None else self.wx(i)
            self.c.line(x1, y, self.wx(j), y + h, cls="wire regroup")
        self.open_wires(y + h, r=r_out)

    def input_row(self, name, shape, cls="input"):
        y = self.y
        two = False
        for i, a in enumerate(shape):
            nm, sz = _ax(a)
            self.c.text(self.wx(i), y + 4, nm or sz, FS, "#111111", "c", bold=True, cls="axis name")
            if nm and nm != sz:
                self.c.text(self.wx(i), y + 12.5, sz, FS_SMALL, GREY, "c", cls="axis size")
                two = True
        self.c.text(self.label_x(len(shape)) + 2, y + 4, name, FS, "#111111", bold=True, cls=cls)
        self.shape = tuple(shape)
        self.open_wires(y + (17.0 if two else 9.0), r=len(shape))
        self.y = y + (21.0 if two else 13.0)  # a lead-in: the wires are seen to enter the first box

    def output_row(self, name):
        y = self.y
        self.close_wires(y)
        two = False
        for i, a in enumerate(self.shape):
            nm, sz = _ax(a)
            self.c.text(self.wx(i), y + 5, nm or sz, FS, "#111111", "c", bold=True, cls="axis name")
            if nm and nm != sz:
                self.c.text(self.wx(i), y + 13.5, sz, FS_SMALL, GREY, "c", cls="axis size")
                two = True
        self.c.text(self.label_x(len(self.shape)) + 2, y + 5, name, FS, "#111111", bold=True, cls="output")
        self.y = y + (19.0 if two else 11.0)
        self.main, self.shape, self.wstart = None, (), []

    def copy_row(self, vid):
        """The value on the wires is needed again later: a copy bar, and the copy runs down a lane."""
        y = self.y + 2.0
        r = len(self.shape)
        j = self.lane_alloc(vid, self.shape, y)
        self.c.line(self.lx(j), y, self.wx(max(r, 1) - 1), y, cls="copy", width=0.7)
        for i in range(r):
            self.c.dot(self.wx(i), y, cls="dot copy")
        self.y = y + 5.0

    def frame_open(self, key, level, title, badge):
        self.y += 2.0
        self.open_frames.append([key, level, self.y, title, badge])
        self.y += 12.0

    def frame_close(self):
        key, level, y0, title, badge = self.open_frames.pop()
        self.y += 3.0
        self.frames.append((level, y0, self.y, title, badge))
        self.y += 2.0

    def frame_title(self, title, badge):
        lines = _wrap(title, FS_SMALL, 150.0)
        x = self.label_x(len(self.shape))
        for k, line in enumerate(lines):
            self.c.text(x, self.y + 4.5 + 8.5 * k, line, FS_SMALL, GREY, cls="frame title")
        if badge:
            self.c.text(x + text_width(lines[-1], FS_SMALL) + 4, self.y + 4.5 + 8.5 * (len(lines) - 1), badge,
                        FS, BADGE, bold=True, cls="badge")
        self.y += 8.5 * len(lines) + 3.0

    # ---- one item
    def lane_in(self, vid, x_to, y, glyph="", remaining=0):
        """A held copy comes back at height y: a bar from its lane to x_to (a circled glyph for add/mul)."""
        j = self.lane_of(vid)
        if j is None:
            return
        x = self.lx(j)
        if glyph:
            self.c.circle(x, y, 3.8, "merge glyph", glyph)
            self.c.line(x + 3.8, y, x_to, y, cls="merge", width=0.7)
        else:
            self.c.line(x, y, x_to, y, cls="merge", width=0.7)
        if remaining <= 0:
            self.lane_close(j, y if not glyph else y - 3.8)
        elif not glyph:
            self.c.dot(x, y, cls="dot copy")

    def op_row(self, it, others, sout, remaining, extra_outs):
        c, y = self.c, self.y
        sin = self.shape
        rin, rout = len(sin), len(sout)
        n = it.node if it.kind == "op" else None
        fam = family(n.op) if n is not None else "block"
        fill, stroke = PALETTE[fam]
        title, sub, badge = self.describe(it)
        if n is None:
            acts = block_axes(it.members, sin)
            mode = "all" if acts is None or rout != rin else "act"
        elif regroups(n):
            mode = "regroup"
        else:
            acts = acted_axes(n, rin)
            mode = "all" if acts is None else ("elem" if not acts else "act")
            if mode == "act" and rout not in (rin, rin - len(acts)):
                mode = "all"
        cls = f"op {n.op}" if n is not None else f"block {it.scope.kind}"
        if mode == "elem":
            h = BOX_H
            mid = y + h / 2
            glyph = {"add": "+", "mul": "×"}.get(n.op, "")
            for v in others:
                self.lane_in(v, self.wx(max(rin, 1) - 1), mid, glyph or "·", remaining[v])
            if others:
                for i in range(rin):
                    c.dot(self.wx(i), mid, cls="dot merge")
                lx = self.label_x(rin)
            else:
                gx = self.wx(max(rin, 1) - 1) + 8.0
                c.rect(gx, mid - 3.5, 7.0, 7.0, cls, fill, stroke, 0.7, rounded=False)
                lx = gx + 11.0
            c.text(lx, mid, title, FS, cls="label")
            dy = self.size_labels_inplace(y + h, sin, sout)
            self.y = y + h + ROW_GAP + dy
        elif mode == "regroup":
            h = 10.0
            pairs = regroup_map(n, rin, rout)
            # an axis that keeps its place and its size goes straight through; the others move
            still = [i for i in range(min(rin, rout)) if _ax(sin[i]) == _ax(sout[i])
                     and [p for p in pairs if i in p] == [(i, i)]]
            keep = [self.wstart[i] for i in still]
            self.close_wires(y, [i for i in range(rin) if i not in still])
            moving = [p for p in pairs if p[0] not in still]
            for i, j in moving:
                c.line(self.wx(i), y, self.wx(j), y + h, cls="wire regroup")
            c.text(self.label_x(max(rin, rout)), y + h / 2, title, FS, cls="label")
            dy = self.size_labels(y + h, (), sout, [j for j in range(rout) if j not in still], force=True)
            self.wstart = [None] * rout
            for j in range(rout):
                self.wstart[j] = keep[still.index(j)] if j in still else y + h + dy
            self.y = y + h + dy + ROW_GAP - 2.0
        else:
            lines = [title] + (_wrap(sub, FS_SMALL, 150.0) if sub else [])
            h = max(BOX_H, 3.0 + 9.0 * len(lines)) if n is None else BOX_H
            mid = y + h / 2
            if mode == "all":
                runs = [list(range(max(rin, rout, 1)))]
                acts = list(range(rin))
            else:
                runs = []
                for i in acts:
                    if runs and runs[-1][-1] == i - 1:
                        runs[-1].append(i)
                    else:
                        runs.append([i])
            # the label sits right of the bundle: where wires pass between it and the box, the box
            # holds its op's name too, so that no box is drawn empty
            tag = _tag(it, n) if mode == "act" and runs[-1][-1] < max(rin, rout) - 1 else ""
            grow = 0.0
            if tag:
                last = runs[-1]
                room = self.wx(last[-1]) - self.wx(last[0]) + 13.0
                tag, fs = _fit_tag(tag, room + 2 * TAG_GROW - 3.0)
                grow = min(TAG_GROW, max(0.0, (text_width(tag, fs) + 3.0 - room) / 2))
            for v in others:  # concat, expand, matmul: the held input enters the box
                self.lane_in(v, self.wx(runs[0][0]) - 6.5 - (grow if len(runs) == 1 else 0.0), mid, "",
                             remaining[v])
            for k, run in enumerate(runs):
                x0, x1 = self.wx(run[0]) - 6.5, self.wx(run[-1]) + 6.5
                if tag and k == len(runs) - 1:
                    x0, x1 = x0 - grow, x1 + grow
                c.rect(x0, y, x1 - x0, h, cls, fill, stroke, 1.0 if n is None else 0.8,
                       peripheries=2 if badge and n is None else 1)
                if tag and k == len(runs) - 1:
                    c.text((x0 + x1) / 2, mid, tag, fs, "#111111", "c", cls="label tag")
                if k:
                    c.line(self.wx(runs[k - 1][-1]) + 6.5, mid, x0, mid, cls="box link", color=stroke, width=0.8)
            self.close_wires(y, [i for i in acts if i < rin])
            lx = self.label_x(max(rin, rout))
            ty = mid - 4.5 * (len(lines) - 1)
            c.text(lx, ty, title, FS, bold=n is None, cls="label")
            if badge:
                c.text(lx + text_width(title, FS, n is None) + 4, ty, badge, FS, BADGE, bold=True, cls="badge")
            for k, line in enumerate(lines[1:]):
                c.text(lx, ty + 9.0 * (k + 1), line, FS_SMALL, GREY, cls="label call")
            yb = y + h
            if mode == "act" and rout == rin - len(acts):  # a reduction: the acted wires end in the box
                keep = [i for i in range(rin) if i not in acts]
                moved = [(i, j) for j, i in enumerate(keep) if i != j]
                starts = [self.wstart[i] for i in keep]
                if moved:
                    self.close_wires(yb, [i for i, _ in moved])
                    for i, j in moved:
                        c.line(self.wx(i), yb, self.wx(j), yb + 8.0, cls="wire regroup")
                    starts = [yb + 8.0 if i != j else s for j, (i, s) in enumerate(zip(keep, starts))]
                self.wstart = starts
                self.y = yb + (8.0 if moved else 0.0) + ROW_GAP
            else:
                if mode == "all":
                    self.close_wires(y)
                    self.wstart = [None] * rout
                    acts = list(range(rout))
                else:
                    self.wstart = (self.wstart + [None] * rout)[:rout]
                changed = [i for i in range(rout) if i >= rin or _ax(sin[i]) != _ax(sout[i])]
                passing = [i for i in changed if i not in acts and i < rin]
                self.close_wires(yb, passing)  # a broadcast axis that grew (expand): relabel it
                acts = sorted(set(acts) | set(passing))
                dy = self.size_labels(yb, sin, sout, changed) if changed else 0.0
                for i in acts:
                    if i < rout:
                        self.wstart[i] = yb + (dy if i in changed else 0.0)
                self.y = yb + dy + ROW_GAP
        box_left = self.wx(runs[0][0]) - 6.5 if mode in ("act", "all") else self.wx(0)
        for k, (v, shape) in enumerate(extra_outs):  # further results of a split leave the box to lanes
            yy = y + 2.0 + (BOX_H - 4.0) * (k + 1) / (len(extra_outs) + 1)
            j = self.lane_alloc(v, shape, yy)
            c.line(self.lx(j), yy, box_left, yy, cls="copy", width=0.7)
            c.dot(box_left, yy, cls="dot copy", r=1.2)
        self.shape = tuple(sout)

    def size_labels_inplace(self, y, sin, sout):
        """A broadcast merge that grew an axis (a [1, L, D] parameter added to [N, L, D]) labels it."""
        changed = [i for i in range(min(len(sin), len(sout))) if _ax(sin[i]) != _ax(sout[i])]
        if not changed:
            return 0.0
        self.close_wires(y, changed)
        dy = self.size_labels(y, sin, sout, changed)
        for i in changed:
            self.wstart[i] = y + dy
        return dy

    def describe(self, it):
        """(title, call line, badge) of an op or a collapsed level."""
        if it.kind == "op":
            n = it.node
            t = op_text(n)
            if n.op == "param":  # its own name says what it is: `pos_embedding 1×197×768`
                t = f"{n.path.rsplit('.', 1)[-1]} {t[len('param '):]}"
            if n.op == "select":  # the wire it ends is drawn; say which index is kept
                t = f"select index {n.attrs['index']}"
            if any(s.kind == "shortcut" for s in n.scope.ancestors()):
                t += " (shortcut)"  # after the swap: these ops work on the residual's other path
            return t, "", ""
        s = it.scope
        if s.kind == "block":
            return it.name or display_name(self.view, s), block_call(s), it.badge
        if s.kind == "repeat":
            return display_name(self.view, s), repeat_call(s) or "repeat", it.badge
        if s.kind == "loop":
            return display_name(self.view, s), loop_call(s), it.badge
        if s.kind == "network":
            return self.g.name, "", it.badge
        return s.path or s.name, repeat_call(s) if it.badge else "", it.badge

    def source_row(self, it, vid, shape):
        """A learned tensor (class token, position embedding) starts a lane of its own."""
        y = self.y
        j = self.lane_alloc(vid, shape, y + BOX_H)
        fill, stroke = PALETTE["scale"]
        self.c.rect(self.lx(j) - 4.5, y, 9.0, BOX_H, f"op {it.node.op}", fill, stroke, 0.8)
        self.c.text(self.lx(j), y + BOX_H / 2, "θ", FS_SMALL, "#111111", "c", cls="label tag")  # a learned tensor
        self.c.text(self.label_x(len(self.shape)), y + BOX_H / 2, self.describe(it)[0], FS, cls="label")
        self.y = y + BOX_H + ROW_GAP


TAG_GROW = WS - 6.5 - 4.0   # pt a one-wire box may widen on each side to hold its name (4 pt from the next wire)


def _tag(it, n) -> str:
    """The short name written inside a box: the op (`mean`, `select`), or a level's last name segment."""
    if n is not None:
        return n.op
    s = it.scope
    return (it.name or s.path or s.name or "").rsplit(".", 1)[-1]


def _fit_tag(tag: str, room: float) -> tuple[str, float]:
    """(text, font size) that fits `room` points at the smallest size a circuit uses (FS_SMALL, 7 pt),
    shortened with an ellipsis when it is too long."""
    if text_width(tag, FS_SMALL) <= room:
        return tag, FS_SMALL
    while len(tag) > 1 and text_width(tag + "…", FS_SMALL) > room:
        tag = tag[:-1]
    return tag + "…", FS_SMALL


def _is_noop(it) -> bool:
    """An op that changes nothing at inference: identity, dropout 0 and drop_path 0 (hidden in circuits)."""
    n = it.node if it.kind == "op" else None
    if n is None or len(n.inputs) != 1 or len(n.outputs) != 1:
        return False
    return n.op == "identity" or (n.op in ("dropout", "drop_path") and not n.attrs.get("p"))


def _hide_noops(view):
    """Drop no-op items from the view, their consumers fed by what fed them."""
    gone = {k for k, it in view.items.items() if _is_noop(it)}
    if not gone:
        return
    feed = {}
    for src, dst, v, cls in view.edges:
        if dst in gone:
            feed[dst] = (src, v)
    edges = []
    for src, dst, v, cls in view.edges:
        if dst in gone:
            continue
        while src in gone and src in feed:
            src, v = feed[src]
        if src not in gone:
            edges.append((src, dst, v, cls))
    view.edges = edges
    view.items = {k: it for k, it in view.items.items() if k not in gone}
    for cl in view.clusters.values():
        cl.items = [k for k in cl.items if k not in gone]


def _flow(view):
    """Items in a topological order, the values each consumes and produces, and every value's shape."""
    items = list(view.items.values())
    ins = {it.key: [] for it in items}
    outs = {it.key: [] for it in items}
    shape = {}
    for src, dst, v, _cls in view.edges:
        vid = (src, v.name)
        shape.setdefault(vid, tuple(v.shape))
        if vid not in ins[dst]:
            ins[dst].append(vid)
        if vid not in outs[src]:
            outs[src].append(vid)
    done, order = set(), []
    pending = list(items)
    while pending:  # stable: the first item whose inputs are all drawn
        it = next((x for x in pending if all(v[0] in done for v in ins[x.key])), pending[0])
        pending.remove(it)
        done.add(it.key)
        order.append(it)
    return order, ins, outs, shape


def _run(view, g, nlanes, levels):
    L = _Layout(view, g, nlanes, levels)
    order, ins, outs, vshape = _flow(view)
    remaining = {}
    for key, vs in ins.items():
        for v in vs:
            remaining[v] = remaining.get(v, 0) + 1
    for it in order:
        chain = tuple(it.clusters) if it.kind not in ("input", "output") else ()
        while L.open_frames and L.open_frames[-1][0] not in chain:
            L.frame_close()
        for key in chain:
            cl = view.clusters[key]
            if not cl.items and len(cl.children) == 1:
                continue  # a frame holding one frame only (a repeat around its folded iteration): draw the inner
            if not cl.children and len(cl.items) == 1 and view.items[cl.items[0]].badge:
                continue  # a repeat around one folded, badged box: the box says it all
            if not any(f[0] == key for f in L.open_frames):
                L.frame_open(key, len(L.open_frames), cl.label, cl.badge)
                L.frame_title(cl.label, cl.badge)
        vins = ins[it.key]
        if it.kind == "input":
            if outs[it.key] and L.main is None:
                L.main = outs[it.key][0]
                L.input_row(it.name, vshape[L.main])
            elif outs[it.key]:  # a second network input waits in a lane
                L.lane_alloc(outs[it.key][0], vshape[outs[it.key][0]], L.y)
            continue
        if not vins:
            if outs[it.key] and it.kind == "op":
                L.source_row(it, outs[it.key][0], vshape[outs[it.key][0]])
            continue
        primary = L.main if L.main in vins else vins[0]
        y = L.y
        moved = False
        jp = L.lane_of(primary)
        if (L.main is not None and primary != L.main and remaining.get(L.main, 0) > 0 and jp is not None
                and remaining[primary] == 1):
            # a swap, as string diagrams draw one: the held value comes onto the wires while the wires'
            # value takes its lane (a shortcut's input after the branch, a decoder's skip)
            h = 14.0
            shp = vshape[primary]
            src = L.lane_lines(jp, len(shp))
            L.lane_close(jp, y)
            L.close_wires(y)
            L.lanes[jp] = [L.main, L.shape, y + h]
            for i, x in enumerate(L.lane_lines(jp, len(L.shape))):
                L.c.line(L.wx(i), y, x, y + h, cls="wire park")
            L.move(y, [(i, i) for i in range(len(shp))], len(shp), h, src=src)
            L.main, L.shape = primary, shp
            L.y = y + h + 2.0
        elif L.main is not None and primary != L.main:
            if remaining.get(L.main, 0) > 0:  # park the wires in a lane while another value is worked on
                j = L.lane_alloc(L.main, L.shape, y + 9.0)
                L.close_wires(y)
                for i, x in enumerate(L.lane_lines(j, len(L.shape))):
                    L.c.line(L.wx(i), y, x, y + 9.0, cls="wire park")
                y += 11.0  # then the held value comes in, below: the two moves do not cross
            else:
                L.close_wires(y)
            L.main, L.shape, L.wstart = None, (), []
            moved = True
        if L.main is None:  # bring a held value back onto the wires
            j = L.lane_of(primary)
            shp = vshape[primary]
            if j is not None:
                src = L.lane_lines(j, len(shp))
                if remaining[primary] > 1:
                    L.c.dot(L.lx(j), y, cls="dot copy")
                    L.lane_close(j, y)  # drawn down to here; it goes on below for the later users
                    L.lanes[j] = [primary, shp, y]
                else:
                    L.lane_close(j, y)
                L.move(y, [(i, i) for i in range(len(shp))], len(shp), 9.0, src=src)
            else:
                L.open_wires(y + 9.0, r=len(shp))
            L.main, L.shape = primary, shp
            moved = True
        if moved:
            L.y = y + 11.0
        elif remaining[primary] > 1 and L.main == primary and L.y == y:
            L.copy_row(primary)
        for v in vins:
            remaining[v] -= 1
        if it.kind == "output":
            L.output_row(it.name)
            continue
        others = [v for v in vins if v != primary]
        out = outs[it.key]
        if out:
            sout = vshape[out[0]]
        elif it.kind == "op":
            sout = tuple(it.node.outputs[0].shape)
        else:
            sout = L.shape
        L.op_row(it, others, sout, remaining, [(v, vshape[v]) for v in out[1:]])
        L.main = out[0] if out else None
        if L.main is None:
            L.close_wires(L.y)
            L.shape, L.wstart = (), []
    while L.open_frames:
        L.frame_close()
    return L


def layout(g, depth=1) -> Canvas:
    """The circuit diagram of `g` at `depth` (None: every op) as positioned primitives."""
    view = View(g, depth)
    _hide_noops(view)
    levels = max((len(it.clusters) for it in view.items.values()), default=0)
    first = _run(view, g, 0, levels)
    L = _run(view, g, first.max_lanes, levels)
    c = L.c
    x1, y1 = c.extent()
    width = x1 + 4.0 + levels * 3.0
    for level, y0, yb, _title, _badge in L.frames:
        inset = 1.0 + level * 3.0
        c.prims.insert(0, ("rect", inset, y0, width - 2 * inset, yb - y0, "frame", "none", FRAME, 0.6, True, True, 1))
    import math  # whole points: the SVG and PDF page sizes are then exactly these numbers
    c.width, c.height = float(math.ceil(width)), float(math.ceil(max(y1, L.y) + 3.0))
    return c


def render(g, fmt: str, depth="auto", width=None, rankdir=None, shapes=True, params=False,
           height=None) -> tuple[bytes, dict]:
    """Render the circuit diagram to `fmt` (svg, pdf, png, dot, tex); (bytes, info) like graphviz.render.

    The drawing is made at 100 % with 7 pt as its smallest text, so it is never shrunk: with
    `width` or `height` (points, single, double, a venue: see page.parse_page) a drawing larger
    than the page is an error, not a smaller figure. `depth` "auto": the deepest of 3, 2, 1, 0 that
    fits (1 without a page); with a width and no height it prefers drawings no taller than a page
    (PAGE_HEIGHT). `rankdir`, `shapes` and `params` are those of graphviz.render, accepted so that
    a caller can pick either renderer with the same arguments; a circuit runs top to bottom and
    always labels its axes."""
    if fmt not in FORMATS:
        raise ResdslError("usage", f"unknown output format .{fmt}", help="use .svg, .pdf, .png, .dot or .tex")
    page = parse_page(width, height)
    target, tall = page.width, page.height

    def fits(c, soft=False):
        lim = tall if tall is not None else (PAGE_HEIGHT if soft and target is not None else None)
        return (target is None or c.width <= target) and (lim is None or c.height <= lim)

    if depth == "auto":  # with a page: the deepest of 3, 2, 1, 0 that fits it; else depth 1
        drawn = [(d, layout(g, d)) for d in ([3, 2, 1, 0] if target or tall else [1])]
        depth, c = next(((d, c) for d, c in drawn if fits(c, soft=True)),
                        next(((d, c) for d, c in drawn if fits(c)), drawn[-1]))
    else:
        c = layout(g, depth)
    if not fits(c):
        dname = "all" if depth is None else depth
        over = ([f"{c.width:.0f} pt wide, more than {target:.0f} pt"] if target and c.width > target else []) + \
               ([f"{c.height:.0f} pt tall, more than {tall:.0f} pt"] if tall and c.height > tall else [])
        raise ResdslError("render", f"the circuit diagram of `{g.name}` at depth {dname} is {' and '.join(over)} "
                                    f"({page.describe()}), and shrinking it would make its 7 pt labels unreadable",
                          help="use a smaller --depth, a wider --width (e.g. cvpr-text) or a larger --height")
    info = {"depth": depth, "rankdir": "TB", "warnings": "", "width": c.width, "height": c.height,
            "size": (c.width, c.height)}
    if fmt == "tex":
        return to_tikz(c, g.name).encode(), info
    src = to_dot(c, g.name)
    if fmt == "dot":
        return src.encode(), info
    extra = ("-Kneato", "-n2") + (("-Gdpi=200",) if fmt == "png" else ())
    out, warn = run_dot(src, fmt, extra)
    info["warnings"] = warn
    if fmt == "svg":
        out = clean_svg(out)
    if fmt == "pdf":  # cairo stamps the time: the block charts' rule (SOURCE_DATE_EPOCH or 1970)
        out = pdf_date(out)
    return out, info
