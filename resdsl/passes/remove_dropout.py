"""remove-dropout."""
from __future__ import annotations

from .base import Pass, drop_state, replace_uses


class RemoveDropout(Pass):
    """Remove stochastic ops (dropout, drop_path): inference only.

    Legal: in eval mode, where the `stochastic` ops return their input (torch.nn.Dropout and
    DropPath are identities under module.eval()). Not training-safe: training would lose the noise.
    Requires: ops with the `stochastic` trait, one input and one output.
    Guarantees: no `stochastic` op is left; the eval-mode function is unchanged.
    """

    name = "remove-dropout"
    level = 2
    training_safe = False

    def run(self, g, weights, ctx):
        for n in list(g.nodes):
            if n.has("stochastic") and len(n.inputs) == 1 and len(n.outputs) == 1:
                replace_uses(g, n.outputs[0], n.inputs[0])
                g.nodes = [m for m in g.nodes if m is not n]
                drop_state(g, weights, n)
                ctx.note(self.name, n, f"removed `{n.op}`(p={n.attrs.get('p')}) for inference")
        return g, weights
