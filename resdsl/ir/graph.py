"""The IR: a dataflow graph of primitive ops inside a tree of scopes.

* :class:`Value` - an SSA tensor with a shape on named axes.
* :class:`Node` - one primitive op application. ``path`` is the dotted name of the
  state it owns (``layer1.0.conv1``); nodes that share weights (a shared loop, a
  tied instance) share the path.
* :class:`Scope` - the hierarchy the author wrote: network, block instances,
  residual/shortcut/parallel/branch regions, repeat/iteration and shared loops.
  Each node points at its innermost scope, so renderers and passes can see the
  structure, while backends walk the flat, topologically ordered node list.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import ResdslError, Span
from .shapes import shape_str
from .ops import OPS


@dataclass(eq=False)
class Value:
    name: str
    shape: tuple
    producer: "Node | None" = None
    dtype: str = "float32"

    def __repr__(self):
        return f"%{self.name}"


@dataclass(eq=False)
class Scope:
    kind: str  # network | block | residual | shortcut | parallel | branch | repeat | iteration | loop | group
    name: str
    path: str
    parent: "Scope | None" = None
    span: Span | None = None
    info: dict = field(default_factory=dict)
    children: list = field(default_factory=list)

    def child(self, kind, name, path, span=None, **info) -> "Scope":
        s = Scope(kind, name, path, self, span, info)
        self.children.append(s)
        return s

    def ancestors(self):
        s = self
        while s is not None:
            yield s
            s = s.parent

    @property
    def depth(self) -> int:
        return sum(1 for _ in self.ancestors()) - 1


@dataclass(eq=False)
class Node:
    op: str
    inputs: list
    outputs: list
    attrs: dict
    path: str | None
    params: dict  # local name -> ParamSpec ("" for a bare parameter at `path`)
    scope: Scope
    span: Span | None = None

    @property
    def opdef(self):
        return OPS[self.op]

    def has(self, trait: str) -> bool:
        return trait in OPS[self.op].traits

    def public_attrs(self) -> dict:
        return {k: v for k, v in self.attrs.items() if not k.startswith("_")}


@dataclass(eq=False)
class Graph:
    name: str
    inputs: list
    outputs: list
    nodes: list
    root: Scope
    output_names: list = field(default_factory=list)
    train_only: tuple = ()  # indices of the outputs returned in training mode only (`output y, training aux = ...`)

    def eval_outputs(self) -> list:
        """The outputs returned in eval mode (all of them where none is marked `training`)."""
        return [v for i, v in enumerate(self.outputs) if i not in self.train_only]

    def param_names(self) -> dict:
        """Dotted state name -> ParamSpec, in first-use order, each shared tensor once: the keys of
        the state_dict (a non-persistent buffer, kind "const", is not one)."""
        out = {}
        for n in self.nodes:
            for local, spec in n.params.items():
                if spec.kind == "const":
                    continue
                full = n.path if local == "" else f"{n.path}.{local}"
                out.setdefault(full, spec)
        return out

    def num_params(self) -> int:
        import math
        return sum(math.prod(s.shape) for s in self.param_names().values() if s.kind == "param")

    def users(self) -> dict:
        u = {}
        for n in self.nodes:
            for v in n.inputs:
                u.setdefault(v, []).append(n)
        for v in self.outputs:
            u.setdefault(v, []).append(None)
        return u

    def verify(self, passes_run=()):
        """Check SSA form, topological order, op arity and shared-state agreement."""
        defined = set(self.inputs)
        seen_names = {v.name for v in self.inputs}
        states = {}
        after = f" (after passes: {', '.join(passes_run)})" if passes_run else ""
        add_name, add_value = seen_names.add, defined.add
        for n in self.nodes:
            if n.op not in OPS:
                raise ResdslError("verify", f"unknown op `{n.op}` in the IR{after}", n.span)
            if not defined.issuperset(n.inputs):
                v = next(v for v in n.inputs if v not in defined)
                raise ResdslError("verify", f"`{n.op}` uses %{v.name} before it is defined{after}", n.span)
            for v in n.outputs:
                if v.name in seen_names:
                    raise ResdslError("verify", f"value name %{v.name} is defined twice{after}", n.span)
                if v.producer is not n:
                    raise ResdslError("verify", f"%{v.name} does not point back at its producer{after}", n.span)
                add_name(v.name)
                add_value(v)
            if n.params:
                key = (n.op, tuple(sorted((k, p.shape) for k, p in n.params.items())))
                if n.path in states and states[n.path] != key:
                    raise ResdslError("verify", f"two different ops own the state `{n.path}`{after}", n.span)
                states[n.path] = key
        for v in self.outputs:
            if v not in defined:
                raise ResdslError("verify", f"output %{v.name} is never computed{after}")
        return True


def describe_value(v: Value) -> str:
    return f"%{v.name}: {shape_str(v.shape)}"


def eval_form(g: Graph) -> Graph:
    """`g` as it runs in eval mode: the outputs marked `training` dropped, and every op that only
    they need. Shares `g`'s Values, Nodes and Scopes (nothing is copied); `g` itself where no
    output is marked."""
    if not g.train_only:
        return g
    outs = g.eval_outputs()
    live = set(outs)
    keep = []
    for n in reversed(g.nodes):
        if any(v in live for v in n.outputs):
            keep.append(n)
            live.update(n.inputs)
    keep.reverse()
    names = [nm for i, nm in enumerate(g.output_names) if i not in g.train_only]
    return Graph(g.name, list(g.inputs), outs, keep, g.root, names)

