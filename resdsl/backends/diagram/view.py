"""The view of the block diagram at one depth, built from the IR: items (ops, collapsed boxes, inputs,
outputs), edges classed main / skip / shortcut, the cluster tree of open scopes, runs of alike
iterations folded into one with a ×k badge, and the main path. No DOT here: dot draws it."""
from __future__ import annotations

from .labels import sizes_of, block_call, child_blocks, repeat_call
from ..summary import is_structural, param_counts


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
    for i, (name, v) in enumerate(zip(g.output_names or [f"out{i}" for i in range(len(g.outputs))], g.outputs)):
        src = source(v)
        it = get_item(unique(name, ("output", name), "_"), "output")
        it.name = name + (" (training only)" if i in g.train_only else "")  # `output y, training aux = ...`
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

    if g.train_only:  # a block only the `training` outputs need (an auxiliary head): badged
        from ...ir.graph import eval_form
        run = eval_form(g).nodes
        eval_scopes = {id(s) for n in run for s in n.scope.ancestors()}
        for it in view.items.values():
            if it.kind == "box" and id(it.scope) not in eval_scopes:
                it.badge = (it.badge + ", " if it.badge else "") + "training only"

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
    view.folds = folds


def display_name(view, s) -> str:
    """A scope's name as a box shows it: inside a folded run of iterations (`blocks.0–3 ×4`), the
    path below the iteration (`mlp`, not `blocks.0.mlp`, which would name one instance only)."""
    name = s.path or s.name
    for a in s.ancestors():
        if a is not s and a.kind == "iteration" and view.folds.get(id(a), (1,))[0] > 1 and a.path:
            if name.startswith(a.path + "."):
                return name[len(a.path) + 1:]
    return name


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
            if p is None or not within(p.scope, s):
                return "skip"
            return "shortcut"
    s = n.scope
    if s.kind == "residual" and n.outputs and s.info.get("out") is n.outputs[0]:
        if p is None or not within(p.scope, s):
            return "skip"
        for c in s.children:
            if c.kind == "shortcut" and within(p.scope, c):
                return "skip"
    return "main"


def within(scope, outer) -> bool:
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
            if within(s, it) and s is not it:
                rel.append((s.kind, s.info.get("block"), s.name if s.kind != "iteration" else s.info.get("index")))
        ins = tuple((index.get(id(v.producer), -1) if v.producer is not None else -1, sizes_of(v.shape))
                    for v in n.inputs)
        attrs = repr(sorted((k, repr(v)) for k, v in n.public_attrs().items()))
        sig.append((n.op, attrs, ins, tuple(sizes_of(v.shape) for v in n.outputs), tuple(rel),
                    tuple(sorted((k, p.shape) for k, p in n.params.items()))))
    return tuple(sig)
