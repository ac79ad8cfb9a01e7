"""fold-bn: BatchNorm (eval) into the preceding conv / linear."""
from __future__ import annotations

from ..ir.ops import ParamSpec
from .base import Pass, drop_state, path_users, replace_uses
from .common import channel_affine, key, scale_axis


def out_channel_axis(node, rank: int) -> int:
    """The axis of `node`'s result that its weight's axis 0 indexes (conv: 1, linear: last)."""
    return 1 if node.has("conv") else rank - 1


def fold_affine_into(producer, scale, shift, weights: dict):
    """New (attrs, params, {name: tensor}) for `producer` followed by y*scale + shift (per out channel)."""
    w = weights[key(producer, "weight")]
    dt = w.dtype
    wd = w.double()
    s = scale if scale.dim() == 1 else scale.expand(wd.shape[0])
    wd = wd * s.reshape((-1,) + (1,) * (wd.dim() - 1))
    has_b = producer.attrs.get("bias", False)
    b = weights[key(producer, "bias")].double() if has_b else None
    if b is not None:
        b = b * s
    if shift is not None:
        b = shift if b is None else b + shift
    attrs = dict(producer.attrs)
    params = dict(producer.params)
    new = {key(producer, "weight"): wd.to(dt)}
    if b is not None:
        attrs["bias"] = True
        params["bias"] = ParamSpec((wd.shape[0],), "param", None)
        new[key(producer, "bias")] = b.to(dt)
    return attrs, params, new


def foldable_pair(g, users, pu, n, what):
    """Why `n` (a per-channel affine op) cannot fold into its producer, or None when it can."""
    v = n.inputs[0]
    p = v.producer
    if p is None or not p.has("affine_out"):
        return "its input is not produced by a conv or linear"
    if p.attrs.get("layout") == "in_out":  # a weight stored [in, out]: axis 0 is not the output
        return f"its {p.op} stores its weight [in, out] (layout=\"{p.attrs['layout']}\")"
    if len(users.get(v, [])) != 1 or v in g.outputs:
        return f"%{v.name} has {len(users.get(v, []))} consumers; folding would change the others"
    if pu.get(p.path, 0) != 1 or (n.params and pu.get(n.path, 0) != 1):
        return "its weights are shared with another op (shared loop or tied instance)"
    ax = scale_axis(n, len(v.shape))
    if ax is not None and ax != out_channel_axis(p, len(v.shape)):
        return f"{what} scales axis {ax}, but the {p.op}'s output channels are axis " \
               f"{out_channel_axis(p, len(v.shape))}"
    return None


class FoldBatchNorm(Pass):
    """Fold an eval-mode BatchNorm into the conv or linear that feeds it.

    Legal: in eval mode only (BN then uses its running statistics, a per-channel affine map;
    in training it normalises with batch statistics, so -O1 never runs this pass). The BN's
    input must come from an op with the `affine_out` trait (conv, linear) whose weight axis 0
    indexes the channel axis the BN normalises (axis 1: any conv, a linear on rank-2 input),
    that value must have the BN as its only consumer, and neither op may share its weights.
    Requires: running_mean / running_var (and weight / bias when affine) in the weights.
    Guarantees: the BN node is gone; the conv keeps its path and gets a bias
    (`<path>.weight` = W * gamma / sqrt(var + eps), `<path>.bias` = (b - mean) * gamma /
    sqrt(var + eps) + beta), computed in float64; its result takes the BN's place.
    """

    name = "fold-bn"
    level = 2
    training_safe = False

    def run(self, g, weights, ctx):
        for n in list(g.nodes):
            if not n.has("affine_eval"):
                continue
            users, pu = g.users(), path_users(g)
            why = foldable_pair(g, users, pu, n, "the BatchNorm")
            if why is not None:
                if n.inputs[0].producer is not None and n.inputs[0].producer.has("affine_out"):
                    ctx.note(self.name, n, f"kept bn @{n.path}: {why}", rewrite=False)
                continue
            p = n.inputs[0].producer
            scale, shift = channel_affine(n, weights)
            attrs, params, new = fold_affine_into(p, scale, shift, weights)
            before = count(p) + count(n)
            p.attrs, p.params = attrs, params
            weights.update(new)
            g.nodes = [m for m in g.nodes if m is not n]
            replace_uses(g, n.outputs[0], p.outputs[0])
            drop_state(g, weights, n)
            ctx.note(self.name, n, f"bn @{n.path} folded into {p.op} @{p.path} "
                                   f"(2 nodes, {before:,} parameters -> 1 node, {count(p):,} parameters)")
        return g, weights


def count(n) -> int:
    import math
    return sum(math.prod(s.shape) for s in n.params.values() if s.kind == "param")
