"""remove-identity."""
from __future__ import annotations

from .base import Pass, drop_state, replace_uses


def is_noop(n) -> bool:
    """identity, scale(1.0), and dropout / drop_path with p = 0: the same in training and eval."""
    if n.op == "identity":
        return True
    if n.op == "scale" and float(n.attrs["factor"]) == 1.0:
        return True
    if n.has("stochastic") and float(n.attrs.get("p", 1.0)) == 0.0:
        return True
    return False


class RemoveIdentity(Pass):
    """Remove ops that return their input unchanged: identity, scale(1), dropout(0), drop_path(0).

    Legal: always (training and eval): these ops compute x -> x in both modes.
    Requires: single-input, single-output ops.
    Guarantees: uses of the removed op's result read its input instead; outputs keep their names.
    """

    name = "remove-identity"
    level = 1
    training_safe = True

    def run(self, g, weights, ctx):
        for n in list(g.nodes):
            if is_noop(n) and len(n.inputs) == 1 and len(n.outputs) == 1:
                replace_uses(g, n.outputs[0], n.inputs[0])
                g.nodes = [m for m in g.nodes if m is not n]
                drop_state(g, weights, n)
                ctx.note(self.name, n, f"removed no-op `{n.op}`")
        return g, weights
