"""Elaboration that copies a block instance instead of elaborating it again.

A ResNet-50 calls `Bottleneck` sixteen times, mostly with the same arguments on the same input
shapes, and the six other Bottleneck networks of stdlib/resnet.res call it the same way again.
Elaborating one such call gives the same nodes, scopes, shapes and errors each time, with only
the instance's path (`layer1.1` instead of `layer1.0`) and the value names changed. The language
server re-elaborates every network of a file on an edit inside a shared block; :class:`MemoElaborator`
makes the second and later identical calls a copy of the first, renamed, which is several
times cheaper than elaborating them.

The copy is the graph the elaborator makes, not an approximation: the same nodes in the same
order, the same scopes, value names from the same counters, the same claimed state paths and the
same budget counts (tests/test_lsp.py compares every stdlib network node by node). A call is
copied only when nothing outside its arguments and input shapes can change what it makes:

* every argument is a plain value (number, string, list, a block, an op, a partial of them),
  never a tensor or an instance (`let enc = Encoder(...)`, whose weights are shared);
* its recording saw no shared weights, no `tie=`, no `@` annotation, no shape bound by an
  input, and every path, value and scope it made lies inside the instance;
* at the copy, no path it would claim exists yet, and no limit (steps, parameters, ops,
  nesting) would be crossed; otherwise the call is elaborated as usual, which reports what is
  wrong exactly as `resdsl check` does.

A failing call is never recorded: errors always come from the elaborator itself.
"""
from __future__ import annotations

from ..elaborate import budget as B
from ..elaborate.context import MAX_NODES, MAX_RECURSION, Nest, join, snake
from ..elaborate.elaborator import Elaborator
from ..elaborate.values import BlockRef, Builtin, Fn, MergeSpec, OpRef, Partial
from ..ir.graph import Node, Scope, Value
from ..ir.shapes import Size

_NO = object()  # an argument that makes a call unfit for copying


def _freeze(v):
    """A hashable key equal for arguments that elaborate the same; _NO if there is none."""
    t = type(v)
    if t is int or t is str or t is bool or v is None:
        return (t, v)
    if t is float:
        return (t, repr(v))  # -0.0 is not 0.0 (it is written as it is)
    if isinstance(v, (int, float, str, Size)):
        return (t, v.key() if t is Size else v)
    if isinstance(v, (list, tuple)):
        items = tuple(_freeze(x) for x in v)
        return _NO if _NO in items else (type(v), items)
    if isinstance(v, dict):
        items = tuple((k, _freeze(x)) for k, x in sorted(v.items()))
        return _NO if any(x is _NO for _, x in items) else (dict, items)
    if isinstance(v, (BlockRef, OpRef, Builtin)):
        return ("id", id(v))
    if isinstance(v, Fn) and v.closure is None:
        return ("id", id(v))
    if isinstance(v, Partial):
        parts = (_freeze(v.callee), _freeze(tuple(v.args)), _freeze(dict(v.kwargs)))
        return _NO if _NO in parts else (Partial, parts)
    if isinstance(v, MergeSpec):
        arg = _freeze(v.arg)
        return _NO if arg is _NO else (MergeSpec, v.kind, arg)
    return _NO  # a tensor, an instance, a closure, anything else: elaborate it


_ATOMS = frozenset({int, str, bool, type(None)})


def _freeze_args(args, kwargs):
    """_freeze of (tuple(args), dict(kwargs)) as one flat tuple: a plain argument as its type and value
    (a type is never a value: the reading is unambiguous), any other frozen; _NO if one is unfit."""
    out = [len(args)]
    add = out.append
    for v in args:
        t = type(v)
        if t in _ATOMS:
            add(t)
            add(v)
        else:
            f = _freeze(v)
            if f is _NO:
                return _NO
            add(f)
    for k in sorted(kwargs):
        v = kwargs[k]
        add(k)
        t = type(v)
        if t in _ATOMS:
            add(t)
            add(v)
        else:
            f = _freeze(v)
            if f is _NO:
                return _NO
            add(f)
    return tuple(out)


class _Recording:
    __slots__ = ("claims", "depth", "n0", "nest", "ok")

    def __init__(self, depth, nest, n0):
        self.ok = True
        self.depth = depth  # the deepest block nesting reached (absolute)
        self.nest = nest
        self.claims = {}  # path -> (signature, span), in claim order
        self.n0 = n0


class _Entry:
    __slots__ = (
        "claims",
        "depth",
        "inputs",
        "keep",
        "nest",
        "nesting",
        "node_plan",
        "nodes",
        "params",
        "path",
        "result",
        "scope_plan",
        "scopes",
        "steps",
        "tails",
    )


class MemoElaborator(Elaborator):
    """An Elaborator that copies a block call identical to one it (or another MemoElaborator sharing
    `memo`, for another network of the same Program) elaborated before."""

    # the IR's invariants (Graph.verify) hold for what the elaborator makes, copies included (the
    # tests compare every copied graph with check's, which verifies it): not checked again per edit
    verify_graphs = False

    def __init__(self, program, memo: dict, **kw):
        super().__init__(program, **kw)
        self.memo = memo
        self._recs: list = []

    # ---------------------------------------------------------------- watching what a recorded call does
    def claim(self, path, opname, params, attrs, span):
        existed = path in self.states
        super().claim(path, opname, params, attrs, span)
        if self._recs:
            if existed or self.sharing or "_tie" in attrs:
                for r in self._recs:
                    r.ok = False
            else:
                for r in self._recs:
                    r.claims[path] = self.states[path]

    def nested(self, span):
        if self._recs:
            n = self.nest + 1
            for r in self._recs:
                r.nest = max(r.nest, n)
        return Nest(self, span)

    def apply(self, callee, *a, **kw):
        if self._recs and not isinstance(callee, (OpRef, BlockRef, Partial)):
            for r in self._recs:  # an instance (shared weights) or anything unusual: not copied
                r.ok = False
        return super().apply(callee, *a, **kw)

    # ---------------------------------------------------------------- block calls
    def apply_block(self, ref, tensors, args, kwargs, as_name, ctx, span, path=None):
        self._reach(self.depth + 1, self.nest)
        key = None
        if not self.sharing and all(isinstance(t, Value) for t in tensors):
            frozen = _freeze_args(args, kwargs)
            if frozen is not _NO:  # the `as` name's expression too (unless the path is given): the same steps
                key = (id(ref), id(as_name) if path is None else None, frozen,
                       tuple((t.shape, t.dtype) for t in tensors))
        if key is None:
            return super().apply_block(ref, tensors, args, kwargs, as_name, ctx, span, path)
        hit = self.memo.get(key)
        if hit is not None:
            return self._copy(hit, ref, tensors, args, kwargs, as_name, ctx, span, path)
        return self._record(key, ref, tensors, args, kwargs, as_name, ctx, span, path)

    def _reach(self, depth, nest):
        """Block depth and nesting reached: the recordings open now keep the deepest."""
        for r in self._recs:
            r.depth = max(r.depth, depth)
            r.nest = max(r.nest, nest)

    def _record(self, key, ref, tensors, args, kwargs, as_name, ctx, span, path):
        rec = _Recording(self.depth + 1, self.nest + 1, len(self.nodes))
        steps, params = self.budget.steps, self.budget.params
        n_children, n_ann, shapes = len(ctx.scope.children), len(self.annotations), dict(self.shape_overrides)
        n_pending = len(getattr(self, "pending_ties", ()))  # a tie towards an op defined later (tying.py)
        self._recs.append(rec)
        try:
            out = super().apply_block(ref, tensors, args, kwargs, as_name, ctx, span, path)
        finally:
            self._recs.pop()
        for r in self._recs:  # what the inner call saw, its callers saw too
            r.ok = r.ok and rec.ok
            r.depth = max(r.depth, rec.depth)
            r.nest = max(r.nest, rec.nest)
        if not rec.ok or len(ctx.scope.children) != n_children + 1 or len(self.annotations) != n_ann \
                or self.shape_overrides != shapes or len(getattr(self, "pending_ties", ())) != n_pending:
            return out
        top = ctx.scope.children[-1]
        e = _Entry()
        e.path = top.path
        e.inputs = list(tensors)
        e.nodes = self.nodes[rec.n0:]
        e.scopes = list(_preorder(top))
        e.claims = rec.claims
        e.result = out
        e.steps = self.budget.steps - steps
        e.params = self.budget.params - params
        e.depth = rec.depth - self.depth
        e.nest = rec.nest - self.nest
        e.keep = (ref, args, kwargs)  # the objects whose ids the key holds stay alive
        if not _inside(e):
            return out
        e.tails = [p[len(e.path):] for p in {*(n.path for n in e.nodes), *(s.path for s in e.scopes)} if p]
        e.nesting = _nesting([p[len(e.path):] for p in e.claims])
        _plan(e)
        self.memo[key] = e
        return out

    def _copy(self, e, ref, tensors, args, kwargs, as_name, ctx, span, path):
        b = self.budget
        if path is None:  # the instance's path, as _apply_block names it
            steps = b.steps
            name = self.name_of(as_name, ctx)
            path = join(ctx.prefix, name or self.auto_name(ctx, snake(ref.name)))
            b.steps = steps  # e.steps holds the recorded call's evaluation of the same `as` expression
        if (self.depth + e.depth > MAX_RECURSION or self.nest + e.nest > B.MAX_NEST
                or b.steps + e.steps > b.max_steps or b.params + e.params > B.MAX_TOTAL_PARAMS
                or len(self.nodes) + len(e.nodes) > MAX_NODES
                or not path or any(path + tail in self.states for tail in e.tails) or self._nests(e, path)):
            # something differs here: elaborate it, which says what is wrong as `check` does
            return super().apply_block(ref, tensors, args, kwargs, as_name, ctx, span, path)
        b.steps += e.steps
        b.params += e.params
        self._reach(self.depth + e.depth, self.nest + e.nest)
        self._note_prefixes(e, path)
        values = dict(zip(map(id, e.inputs), tensors))
        scopes = []
        for kind, sname, tail, falsy, parent, sspan, _, _ in e.scope_plan:
            parent = ctx.scope if parent < 0 else scopes[parent]
            c = Scope(kind, sname, falsy if tail is None else path + tail, parent,
                      span if sspan is None else sspan, {})  # the instance's own scope: placed at this call
            parent.children.append(c)
            scopes.append(c)
        fresh, states, specs, nodes, recs = self.fresh, self.states, self.param_specs, self.nodes, self._recs
        counts, used = self.value_names, self.used_names
        node_at = getattr(self, "node_at", None)
        under = path.replace(".", "_")
        plain = under.isascii() and under.isidentifier()  # then so is each name made from it: fresh() inlined
        for op, ins, attrs, tail, falsy, params, si, nspan, claimed, outs, tail_, tail_ok in e.node_plan:
            p = falsy if tail is None else path + tail
            node = Node(op, [values[i] for i in ins], [], dict(attrs), p, dict(params), scopes[si], nspan)
            if params and node_at is not None:  # what a later `tie=` finds by path (tying.py)
                node_at.setdefault(p, node)
            if claimed is not None:
                states[p] = claimed
                specs.setdefault(p, node.params)
                for r in recs:
                    r.claims[p] = claimed
            if p:
                base = under + tail_ if tail is not None else p.replace(".", "_")
                fast = plain and tail_ok and tail is not None
            else:
                base, fast = op, tail_ok  # (tail_ok: whether the op's name is a plain one, for a node with no path)
            for i, (vid, shape, dtype) in enumerate(outs):
                want = base if len(outs) == 1 else f"{base}_{i}"
                if fast:  # = fresh(want): a name not given out yet, from the counter of its base
                    k = counts.get(want, 0)
                    name = want if k == 0 else f"{want}_{k}"
                    while name in used:
                        k += 1
                        name = f"{want}_{k}"
                    counts[want] = k + 1
                    used.add(name)
                else:
                    name = fresh(want)
                w = Value(name, shape, node, dtype)
                node.outputs.append(w)
                values[vid] = w
            nodes.append(node)
        for c, (*_, info, vkeys) in zip(scopes, e.scope_plan):
            c.info = dict(info)
            for k in vkeys:
                c.info[k] = _map(info[k], values)
        return _map(e.result, values)


    def _nests(self, e, path) -> bool:
        """Whether a path the copy would claim nests with a state path there already (`layer.1` and
        `layer.1.conv`): traps.check_nesting's error, which the elaborator then gives."""
        claims, first_deep, inner = e.nesting
        if not claims:
            return False
        states = self.states
        q = path
        while (i := q.rfind(".")) >= 0:  # a proper prefix of the instance's path: of every claimed path
            q = q[:i]
            if q in states:
                return True
        if first_deep is not None and path in states:
            return True
        if any(path + t in states for t, _ in inner):
            return True
        under = self.__dict__.get("state_prefixes") or {}  # proper prefix -> a state path under it
        return any(path + t in under for t in claims)

    def _note_prefixes(self, e, path) -> None:
        """The proper prefixes of the claimed paths, each with the first claimed path under it, as
        traps.check_nesting notes them for the claims it checks."""
        claims, first_deep, inner = e.nesting
        if not claims:
            return
        under = self.__dict__.setdefault("state_prefixes", {})
        first = path + claims[0]
        q = path
        while (i := q.rfind(".")) >= 0:
            q = q[:i]
            under.setdefault(q, first)
        if first_deep is not None:
            under.setdefault(path, path + first_deep)
        for t, c in inner:
            under.setdefault(path + t, path + c)


def _nesting(tails) -> tuple:
    """(the claimed paths' parts after the instance's path, in claim order; the first that is not
    empty, or None; [(a proper prefix's part strictly inside the instance, the first claim's part
    under it)])."""
    first_deep, inner = None, {}
    for t in tails:
        if t:
            if first_deep is None:
                first_deep = t
            parts = t[1:].split(".")
            for k in range(1, len(parts)):
                inner.setdefault("." + ".".join(parts[:k]), t)
    return tails, first_deep, list(inner.items())


def _plan(e) -> None:
    """What a copy makes, precomputed: each path as its part after the instance's path (None, and the
    path itself, when it is empty), values and scopes as indices, the scope info keys that hold
    values (the others are copied as they are)."""
    cut = len(e.path)
    index = {id(s): i for i, s in enumerate(e.scopes)}
    e.scope_plan = [(s.kind, s.name, s.path[cut:] if s.path else None, s.path, index.get(id(s.parent), -1),
                     None if i == 0 else s.span, s.info, [k for k, v in s.info.items() if _values_in(v, [])])
                    for i, s in enumerate(e.scopes)]
    e.node_plan = [(n.op, [id(v) for v in n.inputs], n.attrs, n.path[cut:] if n.path else None, n.path, n.params,
                    index[id(n.scope)], n.span, e.claims.get(n.path) if n.path else None,
                    [(id(v), v.shape, v.dtype) for v in n.outputs],
                    *(_tail_name(n.path[cut:]) if n.path else (None, _plain_name(n.op))))
                   for n in e.nodes]


def _plain_name(name: str) -> bool:
    """Whether fresh() keeps `name` as it is (and `name_1`, ...)."""
    return name.isascii() and name.isidentifier()


def _tail_name(tail):
    """(the part of a value name a path's tail gives, whether it keeps a name made of identifier
    characters one: then the copy gives value names without fresh()'s clean-up)."""
    if tail is None:
        return None, False
    t = tail.replace(".", "_")
    return t, t.isascii() and (not t or ("a" + t).isidentifier())


def _preorder(s):
    yield s
    for c in s.children:
        yield from _preorder(c)


def _map(x, values):
    if isinstance(x, Value):
        return values[id(x)]
    if isinstance(x, dict):
        return {k: _map(v, values) for k, v in x.items()}
    if isinstance(x, list):
        return [_map(v, values) for v in x]
    if isinstance(x, tuple):
        return tuple(_map(v, values) for v in x)
    return x


_SCALARS = frozenset({int, float, str, bool, type(None)})


def _values_in(x, out):
    """The tensors (Values) inside `x`, through dicts, lists and tuples, appended to `out`."""
    t = type(x)
    if t in _SCALARS:
        return out
    if t is Value:
        out.append(x)
    elif isinstance(x, dict):
        for v in x.values():
            if type(v) not in _SCALARS:
                _values_in(v, out)
    elif isinstance(x, (list, tuple)):
        for v in x:
            if type(v) not in _SCALARS:
                _values_in(v, out)
    elif isinstance(x, Value):
        out.append(x)
    return out


def _inside(e) -> bool:
    """Whether everything the recorded call made lies inside it: paths under its own, node inputs
    and scope values among its inputs and its own outputs, node scopes among its scopes."""
    old = e.path
    under = old + "."
    known = {id(v) for v in e.inputs}
    scopes = {id(s) for s in e.scopes}
    for s in e.scopes:
        if s.path and s.path != old and not s.path.startswith(under):
            return False
    for n in e.nodes:
        if n.path is not None and n.path != old and not n.path.startswith(under):
            return False
        if id(n.scope) not in scopes or any(id(v) not in known for v in n.inputs):
            return False
        if _values_in(n.attrs, []):
            return False
        known.update(id(v) for v in n.outputs)
    if any(p != old and not p.startswith(under) for p in e.claims):
        return False
    return all(id(v) in known for s in e.scopes for v in _values_in(s.info, [])) and \
        all(id(v) in known for v in _values_in(e.result, []))
