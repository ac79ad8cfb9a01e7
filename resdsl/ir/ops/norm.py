"""Normalisations: bn, gn, ln, ln2d, rmsnorm (with learned affine parameters) and l2norm."""
from __future__ import annotations

from .core import (
    EPS,
    POS,
    PROB,
    REQUIRED,
    TORCH_INIT,
    OpError,
    ParamSpec,
    chan,
    channel_and_space,
    check_rank,
    dim_axes,
    last_axis,
    norm_axis,
    op,
    static,
    weight,
)


def _bn_axes(n, r):  # statistics over the batch and space, one per channel: C is broadcast
    return [i for i in range(r) if i != 1]


@op("bn", [("eps", "num", 1e-5, EPS), ("momentum", "num", 0.1, PROB), ("affine", "bool", True),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm", "affine_eval"), doc="BatchNorm over axis 1 (rank 2..5)",
    family="norm", axes=_bn_axes, macs=0, init=TORCH_INIT)
def _bn(ins, a):
    (x,) = ins
    check_rank(x, (2, 3, 4, 5), "bn", "N, C, *spatial")
    c = chan(x)
    a["_c"], a["_nd"] = c, max(1, len(x) - 2)
    p = {}
    if a["affine"]:
        p["weight"] = weight((c,), a["weight_init"])
        p["bias"] = weight((c,), a["bias_init"])
    p["running_mean"] = ParamSpec((c,), "buffer")
    p["running_var"] = ParamSpec((c,), "buffer")
    p["num_batches_tracked"] = ParamSpec((), "buffer")
    return [x], p


@op("gn", [("groups", "int", REQUIRED, POS), ("eps", "num", 1e-5, EPS), ("affine", "bool", True),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="GroupNorm over axis 1",
    family="norm", label=lambda n: f"gn {n.attrs['groups']}", axes_note="always", axes=channel_and_space, macs=0,
    init=TORCH_INIT)
def _gn(ins, a):
    (x,) = ins
    check_rank(x, (2, 3, 4, 5), "gn", "N, C, *spatial")
    c = chan(x)
    if c % a["groups"]:
        raise OpError(f"gn groups={a['groups']} must divide the {c} channels", kind="type")
    a["_c"] = c
    p = {}
    if a["affine"]:
        p = {"weight": weight((c,), a["weight_init"]), "bias": weight((c,), a["bias_init"])}
    return [x], p


def _ln_axes(n, r):
    return list(range(r - n.attrs.get("dims", 1), r))


@op("ln", [("eps", "num", 1e-5, EPS), ("affine", "bool", True), ("bias", "bool", True), ("dims", "int", 1, POS),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="LayerNorm over the last `dims` axes",
    family="norm", axes_note="always", axes=_ln_axes, macs=0, init=TORCH_INIT)
def _ln(ins, a):
    (x,) = ins
    if a["dims"] < 1 or a["dims"] > len(x):
        raise OpError(f"ln dims={a['dims']} must be between 1 and the rank {len(x)}", kind="type")
    norm = tuple(static(ax.size, "a LayerNorm axis") for ax in x[len(x) - a["dims"]:])
    a["_shape"] = norm
    p = {}
    if a["affine"]:
        p["weight"] = weight(norm, a["weight_init"])
        if a["bias"]:
            p["bias"] = weight(norm, a["bias_init"])
    return [x], p


@op("ln2d", [("eps", "num", 1e-5, EPS), ("affine", "bool", True), ("weight_init", "init", None),
             ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="LayerNorm over the channel axis 1 of [N, C, H, W] (ConvNeXt's LayerNorm2d)",
    family="norm", axes_note="always", axes=lambda n, r: [1], macs=0, init=TORCH_INIT)
def _ln2d(ins, a):
    (x,) = ins
    check_rank(x, (4,), "ln2d", "N, C, H, W")
    c = chan(x)
    a["_shape"] = (c,)
    p = {}
    if a["affine"]:
        p = {"weight": weight((c,), a["weight_init"]), "bias": weight((c,), a["bias_init"])}
    return [x], p


@op("rmsnorm", [("eps", "num", None, EPS), ("affine", "bool", True), ("weight_init", "init", None)],
    traits=("has_params", "norm"), doc="RMSNorm over the last axis",
    family="norm", axes_note="always", axes=last_axis, macs=0, init=TORCH_INIT)
def _rms(ins, a):
    (x,) = ins
    d = static(x[-1].size, "the RMSNorm axis")
    a["_shape"] = (d,)
    return [x], ({"weight": weight((d,), a["weight_init"])} if a["affine"] else {})


@op("l2norm", [("dim", "int", -1), ("eps", "num", 1e-12, EPS)], traits=("pure",),
    doc="x / max(||x||_2, eps) along `dim` (FixNorm; with scalar_mul, ScaleNorm)",
    family="norm", axes=dim_axes(-1), macs=0)
def _l2norm(ins, a):
    a["dim"] = norm_axis(ins[0], a["dim"])
    return [ins[0]], {}
