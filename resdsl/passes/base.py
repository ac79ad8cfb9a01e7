"""Pass infrastructure: the :class:`Pass` contract, graph cloning, and the :class:`PassManager`.

A pass maps ``(graph, weights) -> (graph, weights)``. It never mutates its inputs:
:meth:`Pass.__call__` hands :meth:`Pass.run` a fresh clone of the graph (new Values
and Nodes; Scopes, Spans and ParamSpecs are shared because nobody mutates them) and a
shallow copy of the weight dict (tensors are replaced, never written in place).
"""
from __future__ import annotations

import math

from ..ir.graph import Graph, Node, Value


def clone_graph(g: Graph) -> Graph:
    """A copy of `g` with fresh Values and Nodes (same names, same order)."""
    vmap = {}

    def val(v):
        if v not in vmap:
            vmap[v] = Value(v.name, v.shape, None, v.dtype)
        return vmap[v]

    inputs = [val(v) for v in g.inputs]
    nodes = []
    for n in g.nodes:
        m = Node(n.op, [val(v) for v in n.inputs], [val(v) for v in n.outputs], dict(n.attrs), n.path,
                 dict(n.params), n.scope, n.span)
        for v in m.outputs:
            v.producer = m
        nodes.append(m)
    return Graph(g.name, inputs, [val(v) for v in g.outputs], nodes, g.root, list(g.output_names), g.train_only)


def param_count(g: Graph) -> int:
    return sum(math.prod(s.shape) for s in g.param_names().values() if s.kind == "param")


def replace_uses(g: Graph, old: Value, new: Value):
    """Point every use of `old` (node inputs, graph outputs) at `new`."""
    for n in g.nodes:
        if old in n.inputs:
            n.inputs = [new if v is old else v for v in n.inputs]
    g.outputs = [new if v is old else v for v in g.outputs]


def path_users(g: Graph) -> dict:
    """path -> number of nodes that own state under it."""
    out = {}
    for n in g.nodes:
        if n.path is not None and n.params:
            out[n.path] = out.get(n.path, 0) + 1
    return out


def drop_state(g: Graph, weights: dict, node: Node):
    """Remove `node`'s tensors from `weights` unless another remaining node still owns the path."""
    if not n_params(node):
        return
    if any(m is not node and m.path == node.path and m.params for m in g.nodes):
        return
    for local in node.params:
        weights.pop(node.path if local == "" else f"{node.path}.{local}", None)


def n_params(node: Node) -> bool:
    return bool(node.params) and node.path is not None


def where(node: Node) -> str:
    return node.span.where if node.span is not None else "<no source>"


class Context:
    """What a pass may use besides the graph: the log for --explain."""

    def __init__(self, explain=False, log=None):
        self.explain = explain
        self.log = log
        self.rewrites = 0

    def note(self, pass_name: str, node: Node | None, message: str, rewrite: bool = True):
        self.rewrites += rewrite
        if self.explain and self.log is not None:
            at = where(node) if node is not None else "<graph>"
            self.log.write(f"[{pass_name}] {at}: {message}\n")


class Pass:
    """A graph-and-weights rewrite.

    Subclasses set ``name`` (kebab-case), ``level`` (the lowest -O that runs it),
    ``training_safe`` (the rewritten network trains like the original), and a
    docstring with three paragraphs: when it is legal, what it requires, what it
    guarantees. They implement :meth:`run`, which may mutate the clone it is given.
    """

    name = ""
    level = 2
    training_safe = False

    def run(self, g: Graph, weights: dict, ctx: Context) -> tuple:
        raise NotImplementedError

    def __call__(self, g: Graph, weights: dict, ctx: Context | None = None) -> tuple:
        ctx = ctx or Context()
        g2, w2 = self.run(clone_graph(g), dict(weights), ctx)
        return g2, w2

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class PassManager:
    """Runs passes in order; with `verify`, checks the IR after each one and names the passes run so far."""

    def __init__(self, passes, verify=False, explain=False, log=None):
        self.passes = list(passes)
        self.verify = verify
        self.ctx = Context(explain, log)

    def run(self, g: Graph, weights: dict) -> tuple:
        done = []
        for p in self.passes:
            before_nodes, before_params = len(g.nodes), param_count(g)
            self.ctx.rewrites = 0
            g, weights = p(g, weights, self.ctx)
            done.append(p.name)
            if self.verify:
                g.verify(passes_run=done)
                _verify_weights(g, weights, done)
            if self.ctx.explain and self.ctx.log is not None:
                self.ctx.log.write(f"[{p.name}] {self.ctx.rewrites} rewrite(s); nodes {before_nodes} -> "
                                   f"{len(g.nodes)}, parameters {before_params:,} -> {param_count(g):,}\n")
        return g, weights


def _verify_weights(g: Graph, weights: dict, done):
    from ..diagnostics import ResdslError
    want = {k: tuple(s.shape) for k, s in g.param_names().items()}
    bad = sorted(set(want) ^ set(weights))
    bad += [k for k in want if k in weights and tuple(weights[k].shape) != want[k]]
    if bad:
        raise ResdslError("verify", f"weights do not match the IR after passes: {', '.join(done)}: "
                                    f"{', '.join(bad[:8])}")
