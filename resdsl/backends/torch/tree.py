"""The module tree: which scopes of the IR become ``nn.Module``s, and where each is called.

The IR is a flat, topologically ordered node list; every node points at its innermost
scope (block instance, repeat, iteration, group, shortcut, loop...). A scope becomes a
module when it opens a new name space (its path differs from its parent module's), so
the state it owns already lives under its path and the state_dict keys do not change:
``layer1`` (a named repeat), ``layer1.0`` (a block instance), ``layer1.0.downsample``
(a shortcut with ops). Its nodes (a contiguous run of the node list) are outlined into
the module's own forward, and the parent calls it.

A scope is left inline in its parent (its state stays a plain container, as before)
when outlining would not be exact: its nodes are not contiguous, or it uses state that
lives outside its own path. Several scopes with one path (a block applied in a shared
``loop``, a tied instance) are one module called several times when they compute the
same function; otherwise the shared loop becomes one module that runs every iteration.
"""
from __future__ import annotations

import keyword
import math

from ...diagnostics import ResdslError
from ...ir.graph import Graph, Scope

MODULE_KINDS = ("block", "repeat", "iteration", "group", "shortcut", "loop")
# what `checkpoint=` wraps: computing units, not containers (a repeat) or shortcuts
UNIT_KINDS = ("block", "iteration", "group", "loop")


class Site:
    """One call of a module: the scope, its node range [lo, hi), its inputs and outputs."""

    __slots__ = ("scope", "path", "lo", "hi", "count", "parent", "children", "inputs", "outputs", "shared",
                 "label", "unit", "ckpt", "primary")

    def __init__(self, scope: Scope, path: str):
        self.scope, self.path = scope, path
        self.lo, self.hi, self.count = None, None, 0
        self.parent, self.children = None, []
        self.inputs, self.outputs = [], []
        self.shared = False  # one module, several call sites
        self.primary = self  # the call site whose nodes define the module's forward
        self.label = _label(scope)
        self.unit = scope.kind in UNIT_KINDS
        self.ckpt = None  # set by plan_checkpoint: list of segments (lists of child sites)

    @property
    def name(self) -> str:
        """The module's name in its parent module."""
        if self.parent is None or self.parent.path == "":
            return self.path
        return self.path[len(self.parent.path) + 1:]

    def __repr__(self):
        return f"Site({self.path!r}, {self.scope.kind}, {self.lo}:{self.hi})"


def _label(scope: Scope) -> str:
    """The block a module computes (its class name): the block scope at the same path, if any."""
    s = scope
    while True:
        if s.kind in ("block", "network"):
            return s.info.get("block", s.name)
        same = [c for c in s.children if c.path == s.path and c.kind in ("block", "iteration", "group")]
        if len(s.children) != 1 or not same:
            break
        s = same[0]
    if scope.kind == "iteration" and scope.parent is not None:
        return f"{scope.parent.name}_body"
    return scope.name or scope.kind


# ------------------------------------------------------------------ names torch can hold
_RESERVED = None


def reserved_name(name: str) -> str | None:
    """Why a layer name cannot be a torch module attribute, or None if it can."""
    global _RESERVED
    if _RESERVED is None:
        import torch.fx
        probe = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
        _RESERVED = set(dir(probe)) | set(vars(probe)) | set(dir(torch.nn.Sequential)) | set(dir(torch.nn.ModuleDict))
    if keyword.iskeyword(name):
        return "is a Python keyword"
    if name.startswith("__"):
        return "starts with `__` (Python would mangle it)"
    if name in _RESERVED:
        return "is already an attribute of torch.nn.Module"
    return None


def check_names(graph: Graph) -> None:
    """Reject state names that cannot be torch module attributes (state_dict keys are never renamed)."""
    seen = set()
    for n in graph.nodes:
        if n.path is None or n.path in seen:
            continue
        seen.add(n.path)
        for part in n.path.split("."):
            why = reserved_name(part)
            if why:
                raise ResdslError("name", f"the name `{part}` (in `{n.path}`) {why}; the torch target cannot "
                                          "use it as a layer name", n.span,
                                  help=f"rename it, e.g. `as {part.strip('_')}_`")
    for s in _walk(graph.root):
        if s.kind in MODULE_KINDS and s.path:
            why = reserved_name(s.path.rsplit(".", 1)[-1])
            if why:
                part = s.path.rsplit(".", 1)[-1]
                raise ResdslError("name", f"the name `{part}` (in `{s.path}`) {why}; the torch target cannot "
                                          "use it as a module name", s.span,
                                  help=f"rename it, e.g. `as {part.strip('_')}_`")


def _walk(root):
    """`root` and everything below it, in preorder (a Scope or a Site: anything with `.children`)."""
    stack = [root]
    while stack:
        s = stack.pop()
        yield s
        stack.extend(reversed(s.children))


# ------------------------------------------------------------------ planning
def plan(graph: Graph) -> Site:
    """The tree of call sites, rooted at the network."""
    cands = _candidates(graph.root)
    for _ in range(8):  # each round drops or merges candidates; a handful of rounds at most
        root, sites, bad = _try_plan(graph, cands)
        if not bad:
            return root
        for s, repl in bad.items():
            cands.pop(s, None)
            if repl is not None:
                cands[repl] = repl.path
    return _try_plan(graph, {graph.root: ""})[0]  # nothing outlined: one flat forward


def _candidates(root: Scope) -> dict:
    """scope -> path, for each scope that opens a name space (in scope-tree order)."""
    out = {root: ""}

    def visit(s: Scope, mpath: str):
        for c in s.children:
            p = mpath
            if c.kind in MODULE_KINDS and c.path and c.path != mpath:
                if c.kind == "loop":  # a named shared loop: each iteration is one call of its body
                    for it in c.children:
                        out[it] = c.path
                    for it in c.children:
                        visit(it, c.path)
                    continue
                out[c] = c.path
                p = c.path
            visit(c, p)
    visit(root, "")
    return out


def _try_plan(graph: Graph, cands: dict):
    nodes = graph.nodes
    sites = {s: Site(s, p) for s, p in cands.items()}
    owner = {}

    def site_of(scope):
        s = scope
        chain = []
        while s not in sites and s not in owner:
            chain.append(s)
            s = s.parent
        found = sites[s] if s in sites else owner[s]
        for c in chain:
            owner[c] = found
        return found

    # nesting
    for scope, site in sites.items():
        if scope.parent is not None:
            site.parent = site_of(scope.parent)
    direct = []
    for i, n in enumerate(nodes):
        site = site_of(n.scope)
        direct.append(site)
        s = site
        while s is not None:
            if s.lo is None:
                s.lo = i
            s.hi = i + 1
            s.count += 1
            s = s.parent
    bad = {}
    root = sites[graph.root]
    for scope, site in sites.items():
        if site is root:
            continue
        if site.count == 0:
            bad[scope] = None
            continue
        if site.hi - site.lo != site.count:
            bad[scope] = _loop_of(scope)
            continue
        pre = site.path + "."
        for i in range(site.lo, site.hi):
            p = nodes[i].path
            if p is not None and not p.startswith(pre):
                bad[scope] = _loop_of(scope)
                break
    paths = {}
    for scope, site in sites.items():
        if scope not in bad and site is not root:
            paths.setdefault(site.path, []).append(site)
    owned = {n.path for n in nodes if n.path is not None}
    for p, group in paths.items():
        if p in owned:  # a leaf op owns this exact path
            for s in group:
                bad[s.scope] = None
    if bad:
        return root, sites, bad
    # inputs, outputs, children
    index = {n: i for i, n in enumerate(nodes)}
    users = graph.users()
    live = [s for s in sites.values() if s.count]
    for site in live:
        if site.parent is not None:
            site.parent.children.append(site)
    # the network's forward takes its inputs and returns its outputs even when no op is left
    # between them (a network of `identity` after remove-identity): root is set whether or not it is live
    root.inputs, root.outputs = list(graph.inputs), list(graph.outputs)
    for site in live:
        site.children.sort(key=lambda c: c.lo)
        if site is root:
            continue
        lo, hi = site.lo, site.hi
        ins, seen = [], set()
        for i in range(lo, hi):
            for v in nodes[i].inputs:
                if v not in seen and (v.producer is None or not lo <= index[v.producer] < hi):
                    seen.add(v)
                    ins.append(v)
        outs = []
        for i in range(lo, hi):
            for v in nodes[i].outputs:
                if any(u is None or not lo <= index[u] < hi for u in users.get(v, ())):
                    outs.append(v)
        site.inputs, site.outputs = ins, outs
    # several call sites of one module must compute one function
    for p, group in paths.items():
        if len(group) < 2:
            continue
        keys = [_key(graph, s, index) for s in group]
        if any(k != keys[0] for k in keys[1:]):
            for s in group:
                bad[s.scope] = _loop_of(s.scope)
            continue
        for s in group:
            s.shared = True
            s.primary = group[0]
    return root, sites, bad


def _loop_of(scope: Scope):
    """A shared loop whose iterations cannot be one module becomes one module itself."""
    if scope.kind == "iteration" and scope.parent is not None and scope.parent.kind == "loop" \
            and scope.path == scope.parent.path:
        return scope.parent
    return None


def _key(graph: Graph, site: Site, index: dict):
    """The structure of a call site: equal keys compute the same function of their inputs."""
    local = {v: ("in", k) for k, v in enumerate(site.inputs)}
    out = []
    for i in range(site.lo, site.hi):
        n = graph.nodes[i]
        for j, v in enumerate(n.outputs):
            local[v] = (i - site.lo, j)
        out.append((n.op, n.path, repr(sorted(n.attrs.items())), tuple(local.get(v) for v in n.inputs)))
    return tuple(out), tuple(local.get(v) for v in site.outputs)


def all_sites(root: Site):
    return _walk(root)


# ------------------------------------------------------------------ checkpointing
def parse_checkpoint(mode) -> str | int:
    """`none`, `blocks`, `sqrt` or a positive int k (also given as a string)."""
    if mode is None or mode is False:
        return "none"
    if isinstance(mode, bool):
        return "blocks"
    if isinstance(mode, int) and mode > 0:
        return mode
    if isinstance(mode, str):
        m = mode.strip().lower()
        if m in ("none", "blocks", "sqrt"):
            return m
        if m.isdigit() and int(m) > 0:
            return int(m)
    raise ResdslError("usage", f"checkpoint must be none, blocks, sqrt or a positive integer, got {mode!r}",
                      help="e.g. checkpoint=\"sqrt\" (about sqrt(n) segments per chain of n blocks)")


def plan_checkpoint(root: Site, graph: Graph, mode) -> None:
    """Mark which child calls of each module run under torch.utils.checkpoint.

    Units (blocks, iterations, groups, loop bodies) in a module's forward are split into
    chains (each unit's one output is only the next unit's one input); `blocks` checkpoints
    every unit alone, `sqrt` cuts each chain of n units into about sqrt(n) segments (Chen et
    al. 2016), an int k into segments of k units. Units inside a checkpointed unit are not
    checkpointed again; containers (a repeat, a shortcut) are looked into."""
    mode = parse_checkpoint(mode)
    if mode == "none":
        return
    users = graph.users()

    def visit(site: Site):
        chains, cur = [], []
        for c in site.children:
            if not c.unit:
                if cur:
                    chains.append(cur)
                    cur = []
                visit(c)
                continue
            if cur and _links(cur[-1], c, users):
                cur.append(c)
            else:
                if cur:
                    chains.append(cur)
                cur = [c]
        if cur:
            chains.append(cur)
        segs = []
        for ch in chains:
            if mode == "blocks":
                size = 1
            elif mode == "sqrt":
                size = math.ceil(len(ch) / max(1, round(math.sqrt(len(ch)))))
            else:
                size = mode
            segs += [ch[i:i + size] for i in range(0, len(ch), size)]
        site.ckpt = segs or None
    visit(root)


def _links(a: Site, b: Site, users) -> bool:
    if a.hi != b.lo or len(a.outputs) != 1 or len(b.inputs) != 1 or a.outputs[0] is not b.inputs[0] \
            or len(b.outputs) != 1:
        return False
    return all(u is not None and _inside(u, b) for u in users.get(a.outputs[0], ()))


def _inside(node, site) -> bool:
    """True when `node` belongs to the call site (its scope lies under the site's scope)."""
    s = node.scope
    while s is not None:
        if s is site.scope:
            return True
        s = s.parent
    return False
