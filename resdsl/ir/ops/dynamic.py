"""Ops whose computation depends on the sample: gated skipping (SkipNet), routing among experts
(mixture-of-experts, S'MoRE), vector quantization to a learned codebook (SoundStream's residual
VQ) and weights chosen per sample (ResFields).

* ``skip_gate``: a learned gate per sample, ``[N, C, 1, ..]`` (pooled features) -> ``[N, 1, 1, ..]``
  in {0, 1} at inference; soft or straight-through while training. A block is skipped with
  ``g * block(x) + (1 - g) * x``.
* ``route``: a router (a linear map to ``experts`` logits, softmax, top-k) -> the dense gates
  ``[.., E]`` (zero outside the top k) and the auxiliary load-balancing loss (a scalar).
* ``combine(gates, y_0, .., y_{E-1})``: ``sum_e gates[.., e] * y_e``.
* ``vq``: nearest codebook entry with the straight-through gradient -> the quantized tensor and
  the VQ-VAE codebook + commitment loss (a scalar).
* ``resfield(x, t)``: a linear layer whose weight is ``W + sum_r v[t, r] M_r`` for the frame
  index ``t`` of each sample (a low-rank temporal residual on the weights).
"""
from __future__ import annotations

from .. import shapes as S
from .core import (
    POS,
    REQUIRED,
    TORCH_INIT,
    Legal,
    OpError,
    check_dim,
    last_axis,
    op,
    static,
    weight,
    with_axis,
)

SCALAR = ()  # the shape of a loss: rank 0


# ------------------------------------------------------------------ skip_gate (SkipNet)
def _skip_gate_macs(n):
    return S.mul(n.inputs[0].shape[0].size, n.attrs["_c"])


@op("skip_gate", [("mode", "str", "straight_through", Legal(choices=("straight_through", "soft"))),
                  ("threshold", "num", 0.5, Legal(0, 1, lo_open=True, hi_open=True))],
    traits=("has_params",),
    doc="learned per-sample gate: sigmoid(w . x + b) over the channels of pooled features; hard "
        "(p > threshold) at inference; while training hard with the sigmoid's gradient "
        "(straight_through) or the sigmoid itself (soft)",
    family="gate", label=lambda n: "skip gate" + (" (soft)" if n.attrs["mode"] == "soft" else ""),
    axes=lambda n, r: [1] if r > 1 else [], macs=_skip_gate_macs, init=TORCH_INIT)
def _skip_gate(ins, a):
    (x,) = ins
    if len(x) < 2:
        raise OpError(f"`skip_gate` needs [N, C] or [N, C, 1, ..] pooled features, got {S.shape_str(x)}")
    if any(ax.size != 1 for ax in x[2:]):
        raise OpError(f"`skip_gate` decides once per sample: the axes after C must be 1, got {S.shape_str(x)}",
                      help="pool first: `adaptive_avgpool(1) -> skip_gate`")
    c = static(x[1].size, "the channel axis of a `skip_gate` input")
    a["_c"] = c
    return [with_axis(x, 1, 1)], {"weight": weight((1, c)), "bias": weight((1,))}


# ------------------------------------------------------------------ route / combine (mixture of experts)
def _route_macs(n):
    return S.mul(S.numel(n.inputs[0].shape), n.attrs["experts"])


def _route_label(n):
    return f"router {n.attrs['experts']}, top-{n.attrs['k']}"


@op("route", [("experts", "int", REQUIRED, Legal(2)), ("k", "int", 1, POS), ("normalize", "bool", False)],
    traits=("has_params",),
    doc="router: softmax(x W^T) over `experts`, keep the top k (renormalised if `normalize`) -> "
        "the gates [.., experts] (zero elsewhere) and the load-balancing loss E * sum_e f_e P_e "
        "(f_e: share of the k choices that go to e, P_e: mean probability of e)",
    family="gate", label=_route_label, axes=last_axis, macs=_route_macs, init=TORCH_INIT)
def _route(ins, a):
    (x,) = ins
    if len(x) < 2:
        raise OpError(f"`route` needs [N, .., D], got {S.shape_str(x)}")
    d = static(x[-1].size, "the last axis of a `route` input")
    e = check_dim(a["experts"], "experts")
    if a["k"] > e:
        raise OpError(f"route k={a['k']} is more than its {e} experts", kind="value",
                      help=f"k is at most {e}")
    a["_in"] = d
    return [with_axis(x, len(x) - 1, e, "E"), SCALAR], {"weight": weight((e, d))}


@op("combine", [], inputs=(2, None), traits=("pure",),
    doc="sum_e gates[.., e] * y_e: the expert outputs y_0 .. y_{E-1} weighted by the gates [.., E] "
        "(their leading axes are those of the y_e)",
    family="merge", label=lambda n: f"combine {len(n.inputs) - 1} experts", axes=lambda n, r: [r - 1], macs=0)
def _combine(ins, a):
    gates, ys = ins[0], ins[1:]
    e = gates[-1].size
    if e != len(ys):
        raise OpError(f"`combine` has gates for {e} experts but {len(ys)} expert outputs",
                      help="pass the gates, then one tensor per expert: combine(g, y0, y1, ..)")
    y = ys[0]
    for other in ys[1:]:
        if len(other) != len(y) or any(p.size != q.size for p, q in zip(y, other)):
            raise OpError(f"`combine` needs expert outputs of one shape: {S.shape_str(y)} and {S.shape_str(other)}")
    lead = gates[:-1]
    if len(lead) > len(y) or any(p.size != q.size for p, q in zip(lead, y)):
        raise OpError(f"`combine`: the gates {S.shape_str(gates)} must be [<leading axes of the outputs>, E], "
                      f"the outputs are {S.shape_str(y)}")
    return [y], {}


# ------------------------------------------------------------------ vq (vector quantization)
def _vq_macs(n):
    return S.mul(S.numel(n.inputs[0].shape), n.attrs["codes"])


@op("vq", [("codes", "int", REQUIRED, Legal(2)), ("beta", "num", 0.25, Legal(0))],
    traits=("has_params",),
    doc="vector quantization of the last axis: the nearest of `codes` learned codebook entries, with "
        "the straight-through gradient -> the quantized tensor and the loss "
        "mean((q - sg[x])^2) + beta * mean((x - sg[q])^2) (codebook and commitment)",
    family="gate", label=lambda n: f"VQ {n.attrs['codes']} codes", axes=last_axis, macs=_vq_macs,
    init=TORCH_INIT)
def _vq(ins, a):
    (x,) = ins
    if len(x) < 1:
        raise OpError("`vq` needs a tensor of rank >= 1")
    d = static(x[-1].size, "the last axis of a `vq` input")
    a["_d"] = d
    return [x, SCALAR], {"codebook": weight((check_dim(a["codes"], "codes"), d))}


# ------------------------------------------------------------------ resfield (ResFields)
def _resfield_macs(n):
    x = n.inputs[0].shape
    a = n.attrs
    return S.add(S.mul(x[0].size, a["rank"] * a["out"] * a["_in"]), S.mul(S.numel(x), a["out"]))


@op("resfield", [("out", "int", REQUIRED, POS), ("frames", "int", REQUIRED, POS), ("rank", "int", REQUIRED, POS),
                 ("bias", "bool", True)],
    inputs=(2, 2), traits=("has_params",),
    doc="linear map with per-sample weights W + sum_r v[t, r] M_r (ResFields): x [N, D] or [N, P, D], "
        "t [N] the frame index of each sample (an integer below `frames`)",
    family="linear", label=lambda n: f"resfield {n.attrs['out']}, {n.attrs['frames']} frames, rank {n.attrs['rank']}",
    axes=last_axis, macs=_resfield_macs, init=TORCH_INIT)
def _resfield(ins, a):
    x, t = ins
    if len(x) not in (2, 3):
        raise OpError(f"`resfield` takes x of rank 2 or 3 ([N, D] or [N, P, D]), got {S.shape_str(x)}")
    if len(t) != 1 or t[0].size != x[0].size:
        raise OpError(f"`resfield` takes t of shape [N] (one frame index per sample of x {S.shape_str(x)}), "
                      f"got {S.shape_str(t)}")
    d = static(x[-1].size, "the last axis of a `resfield` input")
    o = check_dim(a["out"], "output features")
    a["_in"] = d
    p = {"weight": weight((o, d))}
    if a["bias"]:
        p["bias"] = weight((o,))
    p["coeffs"] = weight((a["frames"], a["rank"]))
    p["basis"] = weight((a["rank"], o, d))
    return [with_axis(x, len(x) - 1, o)], p

