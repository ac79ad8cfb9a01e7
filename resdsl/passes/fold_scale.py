"""fold-scale: constant and learned (eval) scales into the preceding conv / linear."""
from __future__ import annotations

from .base import Pass, drop_state, path_users, replace_uses
from .fold_bn import count, fold_affine_into, foldable_pair
from .common import channel_affine


class FoldScale(Pass):
    """Fold a constant scale (`scale(0.1)`, a residual merge=scale(...)), a learned scalar
    (ReZero / SkipInit `scalar_mul`) or a layer scale into the conv / linear before it.

    Legal: in eval mode (the learned factors are then constants; folding them into the conv
    would change how training updates them, so -O1 never runs this pass). The scaled value must
    come from an `affine_out` op (conv, linear) with no other consumer, the scale must act on that
    op's output-channel axis (a scalar acts on all), and neither op may share its weights.
    Requires: ops with the `channel_scale` trait; their factor in the attrs or in the weights.
    Guarantees: the scale node is gone; the conv / linear keeps its path, its weight and bias are
    multiplied by the factor (float64 arithmetic), and its result takes the scale's place.
    """

    name = "fold-scale"
    level = 2
    training_safe = False

    def run(self, g, weights, ctx):
        for n in list(g.nodes):
            if not n.has("channel_scale"):
                continue
            why = foldable_pair(g, g.users(), path_users(g), n, f"the `{n.op}`")
            if why is not None:
                continue
            p = n.inputs[0].producer
            scale, _ = channel_affine(n, weights)
            had_bias = p.attrs.get("bias", False)
            attrs, params, new = fold_affine_into(p, scale, None, weights)
            before = count(p) + count(n)
            p.attrs, p.params = attrs, params
            weights.update(new)
            assert attrs.get("bias", False) == had_bias
            g.nodes = [m for m in g.nodes if m is not n]
            replace_uses(g, n.outputs[0], p.outputs[0])
            drop_state(g, weights, n)
            ctx.note(self.name, n, f"`{n.op}`" + (f" @{n.path}" if n.params else "") + f" folded into {p.op} "
                                   f"@{p.path} (2 nodes, {before:,} parameters -> 1 node, {count(p):,} parameters)")
        return g, weights
