"""common-subexpression-elimination."""
from __future__ import annotations

from .base import Pass, replace_uses


def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return repr(v)


class CommonSubexpressionElimination(Pass):
    """Compute an op once when it is applied twice to the same values with the same attributes.

    Legal: for deterministic ops; two nodes are the same computation when op, inputs (in order),
    attributes and owned state (the same path, for ops with parameters) agree. Ops with the
    `stochastic` trait (dropout, drop_path) draw fresh noise each time and are never merged.
    Requires: SSA values (an input is identified by its Value).
    Guarantees: outputs unchanged; no two remaining deterministic nodes compute the same thing
    (one sweep in topological order, so chains of duplicates merge too).
    """

    name = "common-subexpression-elimination"
    level = 1
    training_safe = True

    def run(self, g, weights, ctx):
        seen = {}
        keep = []
        for n in g.nodes:
            if n.has("stochastic"):
                keep.append(n)
                continue
            k = (n.op, tuple(id(v) for v in n.inputs), _freeze(n.attrs), n.path if n.params else None)
            first = seen.get(k)
            if first is None:
                seen[k] = n
                keep.append(n)
                continue
            for old, new in zip(n.outputs, first.outputs):
                replace_uses(g, old, new)
            ctx.note(self.name, n, f"`{n.op}` computes the same as %{first.outputs[0].name}; reused it")
        g.nodes = keep
        return g, weights
