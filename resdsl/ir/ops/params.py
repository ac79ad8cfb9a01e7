"""Learned tensors and learned scales: param, scalar_mul, scalar_add, layer_scale. Their
attributes give the initial values (ATTR_INIT)."""
from __future__ import annotations

from ..shapes import Axis
from .core import ATTR_INIT, channel_axis, check_dim, elementwise_axes, op, static, weight, whole_bundle

LEARNED = {"family": "scale", "macs": 0, "init": ATTR_INIT}


@op("param", [("shape", "shape"), ("init", "init", ("zeros",))], inputs=0,
    traits=("has_params", "bare_param"), doc="a learned tensor (class token, position embedding, scalar)",
    label=lambda n: "param " + "×".join(str(s) for s in n.attrs["shape"]), axes=whole_bundle, **LEARNED)
def _param(ins, a):
    shp = tuple(check_dim(s, "parameter size") for s in a["shape"])
    return [tuple(Axis(s) for s in shp)], {"": weight(shp, a["init"])}


@op("scalar_mul", [("init", "num", 0.0)], traits=("has_params", "linear", "channel_scale"),
    doc="multiply by one learned scalar (ReZero / SkipInit)", label=lambda n: "× α (learned)",
    axes=elementwise_axes, **LEARNED)
def _smul(ins, a):
    (x,) = ins
    return [x], {"": weight((1,), ("constant", a["init"]))}


@op("scalar_add", [("init", "num", 0.0)], traits=("has_params",), doc="add one learned scalar (Fixup's scalar biases)",
    axes=elementwise_axes, **LEARNED)
def _sadd(ins, a):
    (x,) = ins
    return [x], {"": weight((1,), ("constant", a["init"]))}


@op("layer_scale", [("init", "num", 1e-5)], traits=("has_params", "linear", "channel_scale"),
    doc="learned per-channel scale (channel axis 1 for rank 4/5, else last)", label=lambda n: "× γ (layer scale)",
    axes_note="always", axes=lambda n, r: [n.attrs.get("_axis", 1)], **LEARNED)
def _ls(ins, a):
    (x,) = ins
    ax = channel_axis(x)
    a["_axis"] = ax
    c = static(x[ax].size, "the layer-scale channel axis")
    return [x], {"gamma": weight((c,), ("constant", a["init"]))}
