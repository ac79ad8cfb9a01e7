"""IR -> architecture diagram (DOT via the `graphviz` package; SVG, PDF, PNG by the `dot` binary; TikZ).

The diagram follows the author's structure, not a trace:

* ``depth``: 0 draws the network as one box, 1 its top-level statements, N opens
  blocks, repeats and loops N levels deep, ``None`` ("all") draws every primitive op.
  Residual, parallel and shortcut regions are always drawn open (their skip edges
  are the point of the figure); blocks, repeats, loops and named groups are levels.
* A collapsed ``repeat n`` is one box with a ``×n`` badge; an open repeat folds runs
  of alike iterations (same ops, attributes and shapes) into one with a ``×k`` badge;
  a shared ``loop n`` is one box (or one open iteration) with a loop arrow and
  ``×n, shared``. At depth ``all`` nothing is folded: op nodes are the fx graph's calls.
* The main path (the longest chain from input to output) keeps one x coordinate
  (graphviz ``group``); residual skips are side edges with class ``skip``; the merge
  op is a small node at the join; parallel branches sit side by side.
* Edges carry shapes in the ``.res`` axis names (``N×256×H/4×W/4``) where the
  shape changes; norms, linear maps and reductions say which axes they act on and
  which they broadcast over (``ln[D] over N,L``).
* Node ids are the dotted ``.res`` paths (unnamed ops: ``layer1.0.relu``, ``relu_1``);
  SVG classes mark kinds (``class="node conv"``, ``class="edge skip"``).
* Output is deterministic: the same graph gives byte-identical DOT and SVG.
"""
from __future__ import annotations

import html
import shutil
import subprocess

from ..diagnostics import ResdslError
from .summary import is_structural, param_counts, si

FONT = "Helvetica,Arial,sans-serif"
FORMATS = ("svg", "pdf", "png", "dot", "tex")
WIDTHS = {"single": 252.0, "double": 504.0}
MIN_SCALE = 0.7          # below this the 10 pt labels get smaller than 7 pt: unreadable in print
PAGE_HEIGHT = 650.0      # text height of a journal page, for choosing a depth that fits

# op family -> (fill, stroke); the SVG class of a node is its family (and the op name)
PALETTE = {
    "conv": ("#dbe8f7", "#3b6ea8"),
    "linear": ("#e8def4", "#6a4c9c"),
    "norm": ("#fcf0c8", "#a8841c"),
    "act": ("#dcefdc", "#3d8b3d"),
    "pool": ("#fde3cf", "#c0652a"),
    "merge": ("#ffffff", "#444444"),
    "layout": ("#eeeeee", "#777777"),
    "stochastic": ("#f8dde6", "#a8436b"),
    "scale": ("#f2f2f2", "#666666"),
    "block": ("#f3f5f8", "#34495e"),
    "io": ("#ffffff", "#ffffff"),
}
FAMILY = {
    "conv": "conv", "conv_transpose": "conv",
    "linear": "linear", "attention": "linear", "matmul": "linear", "embedding": "linear",
    "bn": "norm", "gn": "norm", "ln": "norm", "rmsnorm": "norm", "ln2d": "norm", "l2norm": "norm",
    "stack": "merge", "orthogonal": "merge", "scalar_add": "scale",
    "relu": "act", "gelu": "act", "silu": "act", "sigmoid": "act", "tanh": "act", "hardswish": "act",
    "leaky_relu": "act", "softmax": "act",
    "maxpool": "pool", "avgpool": "pool", "adaptive_avgpool": "pool", "upsample": "pool", "pixel_shuffle": "pool",
    "add": "merge", "concat": "merge", "mean": "merge", "mul": "merge",
    "dropout": "stochastic", "drop_path": "stochastic",
    "scale": "scale", "scalar_mul": "scale", "layer_scale": "scale", "param": "scale", "identity": "layout",
    "sub": "merge", "div": "merge", "neg": "scale", "shift": "scale", "rsub": "scale", "div_scalar": "scale",
    "rdiv": "scale",
}
FAMILY.update({n: "act" for n in (  # added for issue 11
    "relu6", "clamp", "hardtanh", "hardsigmoid", "elu", "selu", "celu", "mish", "softplus", "softsign", "prelu",
    "glu", "logsigmoid", "exp", "log", "sqrt", "rsqrt", "abs")})
BADGE = "#b03a2e"
GREY = "#555555"


def family(op: str) -> str:
    return FAMILY.get(op, "layout")


def shape_label(shape) -> str:
    """`N×256×H/4×W/4`: the sizes in the author's axis names."""
    return "×".join(str(a.size) for a in shape)


def _sizes(shape):
    return tuple(a.size for a in shape)


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _axname(a) -> str:
    return a.name if a.name else str(a.size)


# ------------------------------------------------------------------ op labels
def _k(t) -> str:
    t = t if isinstance(t, (list, tuple)) else (t,)
    return "×".join(str(x) for x in t)


def _stride(s) -> str:
    s = s if isinstance(s, (list, tuple)) else (s,)
    return "" if all(x == 1 for x in s) else ", /" + ("×".join(map(str, s)) if len(set(s)) > 1 else str(s[0]))


_ARITH_TEXT = {"sub": "−", "div": "÷", "neg": "negate", "shift": "+ {v}", "rsub": "{v} −", "div_scalar": "÷ {v}",
               "rdiv": "{v} ÷"}


def op_text(n) -> str:
    """Paper-style one-line description: `3×3 conv, 64, /2`."""
    a, op = n.attrs, n.op
    if op == "conv":
        k = n.params["weight"].shape[2:]
        t = f"{_k(k)} conv, {a['out']}{_stride(a['stride'])}"
        if a["groups"] > 1:
            t += f", g{a['groups']}"
        d = a["dilation"] if isinstance(a["dilation"], (list, tuple)) else (a["dilation"],)
        if any(x != 1 for x in d):
            t += f", d{_k(d)}"
        return t
    if op == "conv_transpose":
        return f"{_k(a['kernel'])} conv\u1d40, {a['out']}" + _stride(a["stride"]).replace("/", "×")
    if op == "linear":
        return f"linear {a['out']}"
    if op == "gn":
        return f"gn {a['groups']}"
    if op in ("maxpool", "avgpool"):
        st = a["stride"] if a["stride"] is not None else a["kernel"]
        nd = a.get("_nd", 1)
        k = a["kernel"] if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * nd
        return f"{_k(k)} {op}{_stride(st)}"
    if op == "adaptive_avgpool":
        size = a["size"] if isinstance(a["size"], (list, tuple)) else (a["size"],)
        return "global avgpool" if all(s == 1 for s in size) else f"avgpool → {_k(size)}"
    if op == "scale":
        return f"× {a['factor']:g}" if isinstance(a["factor"], (int, float)) else f"× {a['factor']}"
    if op in _ARITH_TEXT:  # tensor arithmetic: `+ 3`, `6 −`, `÷ 2`
        return _ARITH_TEXT[op].format(v=f"{a['value']:g}" if "value" in a else "")
    if op == "scalar_mul":
        return "× α (learned)"
    if op == "layer_scale":
        return "× γ (layer scale)"
    if op in ("dropout", "drop_path"):
        return f"{op} {a['p']:g}"
    if op == "upsample":
        return f"upsample ×{a['scale']}" + ("" if a["mode"] == "nearest" else f", {a['mode']}")
    if op == "pixel_shuffle":
        return f"pixel shuffle {a['factor']}"
    if op == "attention":
        return f"attention, {a['heads']} heads" + (", causal" if a["causal"] else "")
    if op == "embedding":
        return f"embedding {a['num']}→{a['dim']}"
    if op == "param":
        return "param " + "×".join(str(s) for s in a["shape"])
    if op == "rearrange":
        return f"rearrange {a['pattern']}"
    if op == "concat" and a.get("dim", 1) != 1:
        return f"concat (dim {a['dim']})"
    if op == "softmax":
        return "softmax"
    if op == "gelu" and a["approximate"] != "none":
        return "gelu (tanh)"
    if op in ("split", "chunk"):
        return f"{op} {a.get('n', '') or list(a.get('_sizes', ()))}"
    if op == "mean" and len(n.inputs) == 1:
        return "mean"
    return op


def axes_note(n) -> str:
    """`[D] over N,L`: the axes an op works on, and those it broadcasts over."""
    if not n.inputs:
        return ""
    x = n.inputs[0].shape
    r = len(x)
    if n.op in ("ln",):
        on = list(range(r - n.attrs["dims"], r))
    elif n.op in ("rmsnorm", "linear", "layer_scale") and n.op != "layer_scale":
        on = [r - 1]
    elif n.op == "layer_scale":
        on = [n.attrs.get("_axis", 1)]
    elif n.op == "gn":
        on = list(range(1, r))
    elif n.op == "ln2d":
        on = [1]
    elif n.op == "softmax":
        on = [n.attrs["dim"] % r]
    elif n.op == "attention":
        on = [1, 2]
    elif n.op == "mean" and len(n.inputs) == 1:
        d = n.attrs["dim"]
        on = list(d) if isinstance(d, (list, tuple)) else [d]
    else:
        return ""
    over = [i for i in range(r) if i not in on]
    if n.op in ("linear",) and over == [0]:
        return ""  # a plain [N, features] map: nothing to say
    head = ",".join(_axname(x[i]) for i in on)
    return f"[{head}]" + (" over " + ",".join(_axname(x[i]) for i in over) if over else "")


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_arg_text(x) for x in v) + "]"
    if isinstance(v, (int, str)):
        return str(v)
    return ""


def block_call(scope) -> str:
    """`Bottleneck(planes=128, stride=2)`: the block and its non-default arguments."""
    args = scope.info.get("args") or {}
    defaults = scope.info.get("defaults") or {}
    parts = []
    for k, v in args.items():
        t = _arg_text(v)
        if not t or (k in defaults and _arg_text(defaults[k]) == t):
            continue
        parts.append(f"{k}={t}")
    return f"{scope.info.get('block', scope.name)}({', '.join(parts)})"


def _runs(values) -> str:
    """2,1,1,1 (short) or 2,1×22 (long): the per-iteration values of one argument."""
    if len(values) <= 4:
        return ",".join(values)
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return ",".join(v if c == 1 else f"{v}×{c}" for v, c in out)


def child_blocks(scope) -> list:
    """The block instances a repeat or group consists of (iteration wrappers looked through), or []."""
    blocks = []
    for c in scope.children:
        inner = c.children if c.kind == "iteration" else [c]
        if len(inner) != 1 or inner[0].kind != "block":
            return []
        blocks.append(inner[0])
    return blocks


def repeat_call(scope) -> str:
    """What a repeat repeats: `Bottleneck(planes=128, stride=2,1,1,1)` or ''."""
    blocks = child_blocks(scope)
    if not blocks or len({b.info.get("block") for b in blocks}) != 1:
        return ""
    keys = list((blocks[0].info.get("args") or {}).keys())
    defaults = blocks[0].info.get("defaults") or {}
    parts = []
    for k in keys:
        vals = [_arg_text((b.info.get("args") or {}).get(k)) for b in blocks]
        if not all(vals):
            continue
        if len(set(vals)) == 1:
            if k in defaults and _arg_text(defaults[k]) == vals[0]:
                continue
            parts.append(f"{k}={vals[0]}")
        else:
            parts.append(f"{k}={_runs(vals)}")
    return f"{blocks[0].info.get('block')}({', '.join(parts)})"


# ------------------------------------------------------------------ the view
class Item:
    __slots__ = ("key", "kind", "node", "scope", "order", "clusters", "in_shape", "badge", "name", "members")

    def __init__(self, key, kind, node=None, scope=None, order=0):
        self.key, self.kind, self.node, self.scope, self.order = key, kind, node, scope, order
        self.clusters = ()
        self.in_shape = None
        self.badge = ""
        self.name = ""
        self.members = []


class Cluster:
    __slots__ = ("key", "label", "parent", "cls", "badge", "items", "children", "scope")

    def __init__(self, key, label, parent, cls, scope=None, badge=""):
        self.key, self.label, self.parent, self.cls, self.scope, self.badge = key, label, parent, cls, scope, badge
        self.items, self.children = [], []


class View:
    """What the diagram shows at one depth: items (ops, boxes, inputs, outputs), edges, clusters."""

    def __init__(self, g, depth):
        self.g, self.depth = g, depth
        self.items: dict = {}       # key -> Item, in first-appearance order
        self.edges: list = []       # (src key, dst key, Value | None, cls)
        self.clusters: dict = {}    # key -> Cluster
        self.top_clusters: list = []
        self.main: set = set()
        self.loop_edges: list = []  # (src key, dst key, label)
        _build(self)


def _scope_chain(scope):
    return list(reversed(list(scope.ancestors())))  # root first


def _build(view: View):
    g, depth = view.g, view.depth
    level = {}

    def lvl(s):
        k = id(s)
        if k not in level:
            level[k] = (lvl(s.parent) if s.parent is not None else -1) + (1 if is_structural(s) else 0)
        return level[k]

    def collapsed(s):
        return depth is not None and is_structural(s) and lvl(s) >= depth

    # nodes under each scope, in order
    members = {}
    for n in g.nodes:
        for s in n.scope.ancestors():
            members.setdefault(id(s), []).append(n)

    # fold alike iterations of open repeats and loops (finite depth only)
    hidden = {}
    folds = {}  # id(representative iteration scope) -> (count in run, first index, last index, owner scope)
    if depth is not None:
        _fold(g.root, members, hidden, folds, collapsed, lvl)

    def resolve(n):
        while n in hidden:
            n = hidden[n]
        return n

    used = {}
    key_of_obj = {}

    def unique(base, obj, sep):
        k = key_of_obj.get(id(obj))
        if k is not None:
            return k
        cand, i = base, 0
        while cand in used:
            i += 1
            cand = f"{base}{sep}{i}"
        used[cand] = obj
        key_of_obj[id(obj)] = cand
        return cand

    order = [0]

    def get_item(key, kind, node=None, scope=None):
        it = view.items.get(key)
        if it is None:
            it = Item(key, kind, node, scope, order[0])
            order[0] += 1
            view.items[key] = it
        return it

    pc = param_counts(g)

    for v in g.inputs:
        it = get_item(unique(v.name, v, "_"), "input")
        it.name = v.name
    item_of_node = {}

    def item_for(n):
        n = resolve(n)
        if id(n) in item_of_node:
            return item_of_node[id(n)]
        box = None
        for s in _scope_chain(n.scope):
            if collapsed(s):
                box = s
                break
        if box is not None:
            key = unique(box.path or box.name or g.name, box, "@")
            it = get_item(key, "box", scope=box)
        else:
            base = n.path if n.path else ".".join(p for p in (n.scope.path, n.op) if p)
            key = unique(base, n, "@" if n.path else "_")
            it = get_item(key, "op", node=n)
        item_of_node[id(n)] = it
        it.members.append(n)
        return it

    in_key = {v: key_of_obj[id(v)] for v in g.inputs}

    def source(v):
        if v.producer is None:
            return view.items[in_key[v]]
        return item_for(v.producer)

    seen_edges = set()
    residual_of = {}
    for n in g.nodes:
        if n in hidden:
            continue
        dst = item_for(n)
        for v in n.inputs:
            src = source(v)
            if dst.in_shape is None:
                dst.in_shape = v.shape
            if src is dst:
                continue
            cls = _edge_class(n, v, residual_of)
            vv = _rep_value(v, hidden)
            key = (src.key, dst.key, id(vv))
            if key in seen_edges:
                continue
            seen_edges.add(key)
            view.edges.append((src.key, dst.key, v, cls))
    for name, v in zip(g.output_names or [f"out{i}" for i in range(len(g.outputs))], g.outputs):
        src = source(v)
        it = get_item(unique(name, ("output", name), "_"), "output")
        it.name = name
        it.in_shape = v.shape
        view.edges.append((src.key, it.key, v, "output"))

    # badges and names of collapsed boxes
    for it in view.items.values():
        if it.kind == "box":
            s = it.scope
            if s.kind == "repeat":
                it.badge = f"×{s.info.get('count', 0)}"
            elif s.kind == "loop":
                it.badge = f"×{s.info.get('count', 0)}, shared"
                view.loop_edges.append((it.key, it.key, ""))
            elif s.kind == "group" and len(child_blocks(s)) > 1 and repeat_call(s):
                it.badge = f"×{len(child_blocks(s))}"  # a `for` loop of one block
            fold = _fold_of_block(s, folds)
            if fold:
                it.badge = f"×{fold[0]}" + (", shared" if fold[3].kind == "loop" else "")
                it.name = _range_name(s, fold)

    # clusters
    cluster_keys = {}

    def cluster_for(s):
        """The cluster key for an open scope that is drawn as a frame, or None."""
        if s.parent is None or collapsed(s):
            return None
        if is_structural(s):
            key = cluster_keys.get(id(s))
            if key is None:
                base = "cluster_" + (s.path or s.name)
                key, i = base, 0
                while key in view.clusters:
                    i += 1
                    key = f"{base}@{i}"
                cluster_keys[id(s)] = key
                fold = _fold_of_block(s, folds) if s.kind == "block" else None
                label, badge = _cluster_label(s, fold, folds)
                view.clusters[key] = Cluster(key, label, None, s.kind, s, badge)
            return key
        if s.kind == "iteration" and id(s) in folds:
            cnt, first, last, owner = folds[id(s)]
            if cnt > 1 and not _single_block(s):
                key = f"cluster_{s.path or owner.path}_iter{first}"
                if key not in view.clusters:
                    label = f"{owner.path or owner.name}.{first}–{last}" if owner.kind == "repeat" else \
                        (owner.path or owner.name)
                    badge = f"×{cnt}" + (", shared" if owner.kind == "loop" else "")
                    view.clusters[key] = Cluster(key, label, None, "fold", s, badge)
                return key
        return None

    for it in view.items.values():
        if it.kind in ("input", "output"):
            continue
        start = it.node.scope if it.kind == "op" else it.scope.parent
        chain = []
        for s in (_scope_chain(start) if start is not None else ()):
            c = cluster_for(s)
            if c:
                chain.append(c)
        it.clusters = tuple(chain)
        for parent, child in zip(chain, chain[1:]):
            cl = view.clusters[child]
            if cl.parent is None:
                cl.parent = parent
                view.clusters[parent].children.append(child)
        if chain:
            view.clusters[chain[-1]].items.append(it.key)
    view.top_clusters = [k for k, c in view.clusters.items() if c.parent is None]

    # folded shared loops: an arrow back from the iteration's exit to its entry
    for sid, (cnt, first, last, owner) in folds.items():
        if owner.kind != "loop" or cnt < 2:
            continue
        rep = next((c for c in owner.children if id(c) == sid), None)
        nodes = members.get(sid, [])
        if rep is None or not nodes:
            continue
        entry, exit_ = item_for(nodes[0]), item_for(nodes[-1])
        view.loop_edges.append((exit_.key, entry.key, ""))

    # the main path: the longest chain of items (skips and loop arrows excluded)
    keys = list(view.items)
    pos = {k: i for i, k in enumerate(keys)}
    best = {k: (0, None) for k in keys}
    for src, dst, _v, cls in sorted(view.edges, key=lambda e: (pos[e[1]], pos[e[0]])):
        if cls == "skip" or pos[src] >= pos[dst]:
            continue
        cand = best[src][0] + 1
        if cand > best[dst][0]:
            best[dst] = (cand, src)
    end = max(keys, key=lambda k: (best[k][0], -pos[k])) if keys else None
    while end is not None:
        view.main.add(end)
        end = best[end][1]
    view.params = pc


def _rep_value(v, hidden):
    p = v.producer
    if p is None or p not in hidden:
        return v
    while p in hidden:
        q = hidden[p]
        v = q.outputs[p.outputs.index(v)] if v in p.outputs else q.outputs[0]
        p = q
    return v


def _edge_class(n, v, cache) -> str:
    """'skip' for a residual's skip input (identity or through its shortcut), else 'main'."""
    p = v.producer
    # an edge entering a shortcut from outside it
    for s in n.scope.ancestors():
        if s.kind == "shortcut":
            if p is None or not _within(p.scope, s):
                return "skip"
            return "shortcut"
    s = n.scope
    if s.kind == "residual" and n.outputs and s.info.get("out") is n.outputs[0]:
        if p is None or not _within(p.scope, s):
            return "skip"
        for c in s.children:
            if c.kind == "shortcut" and _within(p.scope, c):
                return "skip"
    return "main"


def _within(scope, outer) -> bool:
    return any(a is outer for a in scope.ancestors())


def _single_block(it_scope) -> bool:
    return len(it_scope.children) == 1 and it_scope.children[0].kind == "block"


def _fold_of_block(s, folds):
    """(count, first, last, owner) when block `s` is the only content of a folded iteration."""
    p = s.parent
    if s.kind == "block" and p is not None and p.kind == "iteration" and id(p) in folds and _single_block(p):
        f = folds[id(p)]
        return f if f[0] > 1 else None
    return None


def _range_name(s, fold):
    cnt, first, last, owner = fold
    if owner.kind == "loop":
        return s.path or s.name
    return f"{owner.path or owner.name}.{first}–{last}" if owner.path else s.path


def _cluster_label(s, fold, folds):
    if s.kind == "block":
        name = _range_name(s, fold) if fold else (s.path or s.name)
        badge = f"×{fold[0]}" + (", shared" if fold[3].kind == "loop" else "") if fold else ""
        return f"{name} · {block_call(s)}", badge
    if s.kind == "repeat":
        return f"{s.path or s.name} · repeat {s.info.get('count', 0)}", ""
    if s.kind == "loop":
        folded = any(id(c) in folds and folds[id(c)][0] > 1 for c in s.children)
        return (s.path or s.name), ("" if folded else f"×{s.info.get('count', 0)}, shared")
    return s.path or s.name, ""


def _fold(scope, members, hidden, folds, collapsed, lvl):
    if collapsed(scope):
        return
    if scope.kind in ("repeat", "loop") and len(scope.children) > 1:
        its = [c for c in scope.children if c.kind == "iteration"]
        live = [c for c in its if members.get(id(c)) and members[id(c)][0] not in hidden]
        sigs = [_signature(c, members.get(id(c), [])) for c in live]
        i = 0
        while i < len(live):
            j = i
            while j + 1 < len(live) and sigs[j + 1] == sigs[i]:
                j += 1
            rep = live[i]
            folds[id(rep)] = (j - i + 1, rep.info.get("index", i), live[j].info.get("index", j), scope)
            for k in range(i + 1, j + 1):
                for a, b in zip(members[id(live[k])], members[id(rep)]):
                    hidden[a] = b
            i = j + 1
    for c in scope.children:
        _fold(c, members, hidden, folds, collapsed, lvl)


def _signature(it, nodes):
    index = {id(n): i for i, n in enumerate(nodes)}
    sig = []
    for n in nodes:
        rel = []
        for s in _scope_chain(n.scope):
            if _within(s, it) and s is not it:
                rel.append((s.kind, s.info.get("block"), s.name if s.kind != "iteration" else s.info.get("index")))
        ins = tuple((index.get(id(v.producer), -1) if v.producer is not None else -1, _sizes(v.shape))
                    for v in n.inputs)
        attrs = repr(sorted((k, repr(v)) for k, v in n.public_attrs().items()))
        sig.append((n.op, attrs, ins, tuple(_sizes(v.shape) for v in n.outputs), tuple(rel),
                    tuple(sorted((k, p.shape) for k, p in n.params.items()))))
    return tuple(sig)


# ------------------------------------------------------------------ DOT
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
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">' + "".join(rows) + "</TABLE>>"


def to_dot(g, depth: int | None = 1, rankdir: str = "TB", shapes: bool = True, params: bool = False,
           size_in: float | None = None) -> str:
    """DOT source of the diagram (deterministic)."""
    import graphviz
    view = View(g, depth)
    d = graphviz.Digraph(g.name, graph_attr={
        "rankdir": rankdir, "fontname": FONT, "fontsize": "9", "nodesep": "0.18", "ranksep": "0.22",
        "newrank": "true", "labeljust": "l", "margin": "0.05", "pad": "0.04", "bgcolor": "white",
        "outputorder": "edgesfirst", "id": g.name,
    }, node_attr={
        "fontname": FONT, "fontsize": "10", "shape": "box", "style": "rounded,filled", "height": "0.26",
        "margin": "0.07,0.03", "penwidth": "0.8",
    }, edge_attr={
        "fontname": FONT, "fontsize": "8", "fontcolor": GREY, "color": "#333333", "arrowsize": "0.55",
        "penwidth": "0.8",
    })
    if size_in is not None:
        d.attr(size=f"{size_in:.4f},1000")
    pc = view.params
    side_groups = {}

    def item_attrs(it):
        key = it.key
        a = {"id": key}
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
        with parent.subgraph(name=ckey) as sg:
            label = _html_label(c.label, badge=c.badge, title_size="8")
            sg.attr(label=label, id="scope:" + ckey[len("cluster_"):], style="rounded,dashed" if c.cls in (
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


def _loop_call(s) -> str:
    inner = [c for c in s.children[0].children] if s.children else []
    if len(inner) == 1 and inner[0].kind == "block":
        return block_call(inner[0])
    return "loop"


def _scope_nodes(g, s):
    return [n for n in g.nodes if _within(n.scope, s)]


# ------------------------------------------------------------------ running dot
def dot_binary() -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise ResdslError("usage", "the graphviz `dot` program is not installed",
                          help="install graphviz (apt-get install graphviz, brew install graphviz), "
                               "or write the .dot file with -o out.dot")
    return exe


def run_dot(source: str, fmt: str, extra=()) -> tuple[bytes, str]:
    """(output bytes, warnings) of `dot -T<fmt>` on `source`."""
    p = subprocess.run([dot_binary(), f"-T{fmt}", *extra], input=source.encode(), capture_output=True)
    err = p.stderr.decode(errors="replace").strip()
    if p.returncode != 0:
        raise ResdslError("render", f"graphviz failed: {err or p.returncode}",
                          help="report this with the .dot file (-o out.dot)")
    return p.stdout, err


def layout_size(source: str) -> tuple[float, float]:
    """Width and height in points of the laid-out drawing."""
    out, _ = run_dot(source, "plain")
    first = out.split(b"\n", 1)[0].split()
    return float(first[2]) * 72.0, float(first[3]) * 72.0


def parse_width(w) -> float | None:
    if w is None:
        return None
    if isinstance(w, (int, float)):
        return float(w)
    w = str(w).strip().lower()
    if w in WIDTHS:
        return WIDTHS[w]
    try:
        v = float(w[:-2] if w.endswith("pt") else w)
    except ValueError:
        raise ResdslError("usage", f"--width {w!r} is not single, double or a number of points",
                          help="e.g. --width single (252 pt), --width double (504 pt), --width 340") from None
    if v <= 0:
        raise ResdslError("usage", f"--width must be positive, got {w}")
    return v


def plan(g, depth="auto", rankdir=None, width=None, shapes=True, params=False):
    """Choose depth, rankdir and scale; returns (dot source, chosen depth, rankdir, (w, h) in pt, warnings).

    `depth` "auto": the deepest of 3, 2, 1, 0 that fits `width` (and a page's height), 1 without a width.
    `rankdir` None: TB, or LR when that fits the width and TB does not."""
    target = parse_width(width)
    auto = depth == "auto"
    depths = ([3, 2, 1, 0] if target else [1]) if auto else [depth]
    dirs = [rankdir] if rankdir else ["TB", "LR"]
    if target is None:
        src = to_dot(g, depths[0], dirs[0], shapes, params)
        return src, depths[0], dirs[0], None
    tried = []
    for dp in depths:
        for rd in dirs:
            src = to_dot(g, dp, rd, shapes, params)
            w, h = layout_size(src)
            scale = min(1.0, target / w) if w else 1.0
            tried.append((dp, rd, w))
            if scale < MIN_SCALE or (auto and h * scale > PAGE_HEIGHT and dp != depths[-1]):
                continue
            if scale < 1.0:
                src = to_dot(g, dp, rd, shapes, params, size_in=target / 72.0)
            return src, dp, rd, (w * scale, h * scale)
    dp, rd, w = min(tried, key=lambda t: t[2])
    dname = "all" if dp is None else dp
    raise ResdslError("render", f"the diagram of `{g.name}` cannot fit {target:g} pt: at depth {dname} it is "
                                f"{w:.0f} pt wide even in {rd}, and shrinking below {MIN_SCALE:.0%} makes "
                                "its labels unreadable",
                      help="use a smaller --depth, --rankdir TB, --no-shapes, or --width double")


def render(g, fmt: str, depth="auto", rankdir=None, width=None, shapes=True, params=False) -> tuple[bytes, dict]:
    """Render to `fmt` (svg, pdf, png, dot, tex). Returns (bytes, info) with info: depth, rankdir, warnings."""
    if fmt not in FORMATS:
        raise ResdslError("usage", f"unknown output format .{fmt}", help="use .svg, .pdf, .png, .dot or .tex")
    src, dp, rd, _ = plan(g, depth, rankdir, width, shapes, params)
    info = {"depth": dp, "rankdir": rd, "warnings": ""}
    if fmt == "dot":
        return src.encode(), info
    if fmt == "tex":
        out, warn = run_dot(src, "json")
        info["warnings"] = warn
        return json_to_tikz(out.decode(), g.name).encode(), info
    extra = ()
    if fmt == "png":  # 300 dpi for print, less for drawings too large for a bitmap
        w, h = layout_size(src)
        extra = (f"-Gdpi={max(24, min(300, int(30000 * 72 / max(w, h, 1.0))))}",)
    out, warn = run_dot(src, fmt, extra)
    info["warnings"] = warn
    if fmt == "svg":
        out = _clean_svg(out)
    elif fmt == "pdf":
        out = _pdf_date(out)
    return out, info


def _pdf_date(data: bytes) -> bytes:
    """Replace the PDF's creation/modification date (cairo writes the current time) by
    SOURCE_DATE_EPOCH, or 1970-01-01 when it is not set: same input, same bytes.
    The date keeps its length, so the PDF's cross-reference offsets stay right."""
    import os
    import re
    import time
    try:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch)).encode()
    except (ValueError, OverflowError, OSError):
        stamp = b"19700101000000"
    if len(stamp) != 14:  # a year past 9999: keep the length
        stamp = b"19700101000000"
    return re.sub(rb"/(CreationDate|ModDate) \(D:\d{14}", lambda m: b"/" + m.group(1) + b" (D:" + stamp, data)


def _clean_svg(data: bytes) -> bytes:
    """Drop graphviz's version comment so the file depends on the input only."""
    import re
    return re.sub(rb"<!-- Generated by graphviz.*?-->\n", b"", data, count=1, flags=re.S)


# ------------------------------------------------------------------ TikZ
_TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "×": r"$\times$", "→": r"$\rightarrow$", "·": r"$\cdot$", "–": "--", "α": r"$\alpha$",
              "γ": r"$\gamma$", "\u1d40": r"$^{\top}$", "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in _TEX_CHARS:
            out.append(_TEX_CHARS[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def json_to_tikz(data: str, name: str = "network") -> str:
    """A standalone LaTeX file (pdflatex) drawing graphviz's layout (`dot -Tjson` draw ops) with TikZ."""
    import json
    d = json.loads(data)
    colors = {}

    def color(c):
        c = c.lower()
        if len(c) == 9:  # #rrggbbaa
            if c.endswith("00"):
                return None
            c = c[:7]
        if c in ("none", "transparent"):
            return None
        if not c.startswith("#"):
            c = {"black": "#000000", "white": "#ffffff"}.get(c, "#000000")
        if c not in colors:
            colors[c] = f"rc{len(colors)}"
        return colors[c]

    body = []

    def ops(seq):
        pen, fill, font, bold, style = "rc_black", None, 10.0, False, []
        pen = color("#000000")
        for o in seq or ():
            k = o["op"]
            if k == "c":
                pen = color(o["color"])
            elif k == "C":
                fill = color(o["color"])
            elif k == "S":
                st = o["style"]
                if st in ("dashed", "dotted"):
                    style = [st]
                elif st.startswith("setlinewidth"):
                    style = [f"line width={float(st[13:-1]):.2f}pt"]
                elif st in ("solid",):
                    style = []
            elif k == "F":
                font = float(o["size"])
            elif k == "t":
                bold = bool(int(o["fontchar"]) & 1)
            elif k in ("p", "P", "L", "b", "B"):
                pts = o["points"]
                if k in ("b", "B"):
                    path = f"({pts[0][0]:.2f},{pts[0][1]:.2f})"
                    for i in range(1, len(pts) - 2, 3):
                        a, b, c = pts[i], pts[i + 1], pts[i + 2]
                        path += (f" .. controls ({a[0]:.2f},{a[1]:.2f}) and ({b[0]:.2f},{b[1]:.2f}) .. "
                                 f"({c[0]:.2f},{c[1]:.2f})")
                else:
                    path = " -- ".join(f"({x:.2f},{y:.2f})" for x, y in pts)
                closed = k in ("p", "P") or (k == "B")
                if closed:
                    path += " -- cycle" if k in ("p", "P") else ""
                opts = list(style)
                if pen:
                    opts.append(f"draw={pen}")
                if k in ("P", "B") and fill:
                    opts.append(f"fill={fill}")
                if not pen and not (k in ("P", "B") and fill):
                    continue
                body.append(f"\\path[{','.join(opts)}] {path};")
            elif k in ("e", "E"):
                x, y, rx, ry = o["rect"]
                opts = list(style)
                if pen:
                    opts.append(f"draw={pen}")
                if k == "E" and fill:
                    opts.append(f"fill={fill}")
                body.append(f"\\path[{','.join(opts)}] ({x:.2f},{y:.2f}) ellipse ({rx:.2f} and {ry:.2f});")
            elif k == "T":
                x, y = o["pt"]
                anchor = {"l": "base west", "r": "base east"}.get(o["align"], "base")
                txt = tex_escape(o["text"])
                if bold:
                    txt = f"\\textbf{{{txt}}}"
                body.append(f"\\node[anchor={anchor},inner sep=0pt,text={pen or 'black'},"
                            f"font=\\fontsize{{{font:.1f}}}{{{font * 1.2:.1f}}}\\selectfont] "
                            f"at ({x:.2f},{y:.2f}) {{{txt}}};")

    def walk(obj):
        for key in ("_draw_", "_ldraw_", "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_"):
            ops(obj.get(key))

    walk({k: v for k, v in d.items() if k == "_draw_"})
    objs = d.get("objects", [])
    for o in objs:  # clusters first (they are backgrounds), then nodes
        if "nodes" in o or o.get("name", "").startswith("cluster"):
            walk(o)
    for e in d.get("edges", []):
        walk(e)
    for o in objs:
        if not ("nodes" in o or o.get("name", "").startswith("cluster")):
            walk(o)
    defs = [f"\\definecolor{{{v}}}{{HTML}}{{{k[1:].upper()}}}" for k, v in colors.items()]
    x0, y0, x1, y1 = (float(t) for t in d.get("bb", "0,0,100,100").split(","))
    return tikz_document(f"{tex_escape(name)}: drawn by resdsl render (TikZ); compile with pdflatex.",
                         x1 - x0 + 14, y1 - y0 + 14, defs, body)


def tikz_document(comment: str, width: float, height: float, defs, body) -> str:
    """A standalone LaTeX page of exactly the picture's size around a tikzpicture."""
    return "\n".join([
        f"% {comment}",
        "% To include it in a paper, copy the color definitions and the tikzpicture (\\usepackage{tikz}).",
        "\\documentclass{article}",
        f"\\usepackage[paperwidth={width:.0f}pt,paperheight={height:.0f}pt,margin=4pt]{{geometry}}",
        "\\usepackage{tikz}",
        "\\pagestyle{empty}",
        "\\begin{document}",
        *defs,
        "\\noindent\\sffamily%",
        "\\begin{tikzpicture}[x=1pt,y=1pt]",
        *body,
        "\\end{tikzpicture}",
        "\\end{document}",
        "",
    ])
