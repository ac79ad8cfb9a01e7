"""dead-code-elimination."""
from __future__ import annotations

from .base import Pass, drop_state


class DeadCodeElimination(Pass):
    """Remove ops whose results reach no output, and their weights.

    Legal: always; a value no output depends on cannot change the outputs, in training or eval.
    Requires: a topologically ordered graph.
    Guarantees: every remaining node has a result that an output depends on; the weights keep
    only the tensors of remaining nodes (a path still owned by another node is kept).
    """

    name = "dead-code-elimination"
    level = 1
    training_safe = True

    def run(self, g, weights, ctx):
        live = set(g.outputs)
        keep = []
        dead = []
        for n in reversed(g.nodes):
            if any(v in live for v in n.outputs):
                keep.append(n)
                live.update(n.inputs)
            else:
                dead.append(n)
        keep.reverse()
        g.nodes = keep
        for n in reversed(dead):
            drop_state(g, weights, n)
            ctx.note(self.name, n, f"removed unused `{n.op}`" + (f" @{n.path}" if n.path else ""))
        return g, weights
