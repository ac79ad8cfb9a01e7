"""Attention without weights: scaled dot-product attention of given queries, keys and values.

``sdpa(q, k, v, heads, causal=true)`` is torch.nn.functional.scaled_dot_product_attention over
``heads`` heads of [N, L, D] tensors (the heads are split from D and merged back), so a model
that computes its own projections (GPT-2's ``c_attn`` / ``c_proj``) names them itself. The
causal mask is made by the lowering (torch's ``is_causal``, ONNX ``Trilu``): no buffer.
"""
from __future__ import annotations

from .. import shapes as S
from .core import POS, REQUIRED, OpError, check_rank, last_two_axes, op, static, with_axis


def _label(n):
    return f"attention, {n.attrs['heads']} heads" + (", causal" if n.attrs["causal"] else "")


def _macs(n):
    q, k, v = (i.shape for i in n.inputs)
    scores = S.mul(S.mul(q[0].size, q[1].size), k[1].size)
    return S.add(S.mul(scores, static(q[2].size, "")), S.mul(scores, static(v[2].size, "")))


@op("sdpa", [("heads", "int", REQUIRED, POS), ("causal", "bool", False), ("scale", "num", None)], inputs=(3, 3),
    traits=("pure",),
    doc="scaled dot-product attention of q, k, v [N, L, D] over `heads` heads "
        "(torch.nn.functional.scaled_dot_product_attention); no weights",
    family="linear", label=_label, axes_note="always", axes=last_two_axes, macs=_macs)
def _sdpa(ins, a):
    q, k, v = ins
    for t, what in ((q, "q"), (k, "k"), (v, "v")):
        check_rank(t, (3,), "sdpa", f"{what}: N, L, D")
    dq = static(q[2].size, "the feature axis of `sdpa`'s q")
    dk = static(k[2].size, "the feature axis of `sdpa`'s k")
    dv = static(v[2].size, "the feature axis of `sdpa`'s v")
    if dq != dk:
        raise OpError(f"`sdpa` needs q and k of one feature size, got {S.shape_str(q)} and {S.shape_str(k)}")
    if k[1].size != v[1].size:
        raise OpError(f"`sdpa` needs k and v of one length, got {S.shape_str(k)} and {S.shape_str(v)}")
    for d, what in ((dq, "q and k"), (dv, "v")):
        if d % a["heads"]:
            raise OpError(f"sdpa heads={a['heads']} must divide the feature size {d} of {what}", kind="type")
    if a["scale"] is not None and not a["scale"] > 0:
        raise OpError(f"sdpa scale must be positive, got {a['scale']}", kind="value")
    return [with_axis(q, 2, dv)], {}


@op("positions", [], traits=("pure",),
    doc="the position ids 0 .. L-1 of token ids [N, L], as [1, L] (Hugging Face's position_ids): "
        "`idx -> positions -> embedding(ctx, d) as wpe`",
    family="linear", label=lambda n: "positions", axes=last_two_axes, macs=0)
def _positions(ins, a):
    (x,) = ins
    check_rank(x, (2,), "positions", "N, L: token ids")
    return [(S.Axis(1, x[0].name), x[1])], {}
