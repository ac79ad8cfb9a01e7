"""Activations and the other one-input elementwise ops: every activation of torch.nn as one word,
the math functions (exp, log, sqrt, rsqrt, abs), softmax and glu, and the stochastic
regularisers dropout and drop_path. Ops with the ``elementwise`` trait act on no axis."""
from __future__ import annotations

from .. import shapes as S
from .core import (
    ATTR_INIT,
    PROB,
    Legal,
    OpError,
    check_finite,
    dim_axes,
    elementwise_axes,
    norm_axis,
    op,
    same_shape,
    static,
    weight,
    with_axis,
)

ACT = {"family": "act", "macs": 0}  # every activation: drawn green, no multiply-adds

for _n, _doc in [("relu", "max(x, 0)"), ("silu", "x * sigmoid(x)"), ("sigmoid", "logistic"), ("tanh", "tanh"),
                 ("hardswish", "hard swish"), ("relu6", "min(max(x, 0), 6)"), ("hardsigmoid", "relu6(x + 3) / 6"),
                 ("selu", "scaled ELU with the self-normalising constants"), ("mish", "x * tanh(softplus(x))"),
                 ("softsign", "x / (1 + |x|)"), ("logsigmoid", "log(sigmoid(x))"), ("exp", "e ** x"),
                 ("log", "natural logarithm"), ("sqrt", "square root"), ("rsqrt", "1 / sqrt(x)"), ("abs", "|x|")]:
    op(_n, [], traits=("elementwise", "pure"), doc=_doc, **ACT)(same_shape)

op("gelu", [("approximate", "str", "none", Legal(choices=("none", "tanh")))], traits=("elementwise", "pure"),
   doc="GELU", label=lambda n: "gelu (tanh)" if n.attrs["approximate"] != "none" else "gelu", **ACT)(same_shape)
op("leaky_relu", [("slope", "num", 0.01)], traits=("elementwise", "pure"), doc="leaky ReLU", **ACT)(same_shape)


@op("clamp", [("min", "num", None), ("max", "num", None)], traits=("elementwise", "pure"),
    doc="min(max(x, min), max); either bound may be left out", **ACT)
def _clamp(ins, a):
    check_finite(a, "clamp", "min", "max")
    if a["min"] is None and a["max"] is None:
        raise OpError("clamp needs `min`, `max` or both", kind="type", help="e.g. clamp(0, 6) or clamp(max=1.0)")
    if a["min"] is not None and a["max"] is not None and a["min"] > a["max"]:
        raise OpError(f"clamp min={a['min']} is above max={a['max']}", kind="type")
    return [ins[0]], {}


@op("hardtanh", [("min_val", "num", -1.0), ("max_val", "num", 1.0)], traits=("elementwise", "pure"),
    doc="clamp to [min_val, max_val] (torch.nn.Hardtanh)", **ACT)
def _hardtanh(ins, a):
    check_finite(a, "hardtanh", "min_val", "max_val")
    if not a["min_val"] < a["max_val"]:  # torch.nn.Hardtanh asserts the same
        raise OpError(f"hardtanh min_val={a['min_val']} must be below max_val={a['max_val']}", kind="type")
    return [ins[0]], {}


@op("elu", [("alpha", "num", 1.0)], traits=("elementwise", "pure"), doc="x if x > 0 else alpha * (exp(x) - 1)",
    **ACT)
def _elu(ins, a):
    check_finite(a, "elu", "alpha")
    return [ins[0]], {}


@op("celu", [("alpha", "num", 1.0)], traits=("elementwise", "pure"),
    doc="max(0, x) + min(0, alpha * (exp(x / alpha) - 1))", **ACT)
def _celu(ins, a):
    check_finite(a, "celu", "alpha")
    if a["alpha"] == 0:
        raise OpError("celu alpha must not be 0 (it divides by alpha)", kind="type")
    return [ins[0]], {}


@op("softplus", [("beta", "num", 1.0), ("threshold", "num", 20.0)], traits=("elementwise", "pure"),
    doc="log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold", **ACT)
def _softplus(ins, a):
    check_finite(a, "softplus", "beta", "threshold")
    if a["beta"] <= 0:
        raise OpError(f"softplus beta={a['beta']} must be positive", kind="type")
    return [ins[0]], {}


def _prelu_axes(n, r):  # one slope: elementwise; one per channel: acts on the channel axis
    return [] if n.attrs["num_parameters"] == 1 else [1]


@op("prelu", [("num_parameters", "int", 1), ("init", "num", 0.25)], traits=("has_params",),
    doc="x if x > 0 else a * x with a learned slope a: one, or one per channel (axis 1) (torch.nn.PReLU)",
    axes=_prelu_axes, init=ATTR_INIT, **ACT)
def _prelu(ins, a):
    (x,) = ins
    check_finite(a, "prelu", "init")
    k = a["num_parameters"]
    if k != 1:
        if len(x) < 2 or x[1].size != k:
            raise OpError(f"prelu num_parameters={k} must be 1 or the channel count (axis 1) of "
                          f"{S.shape_str(x)}", kind="type", help="use prelu for one slope, or prelu(C) "
                                                                  "for one per channel")
    return [x], {"weight": weight((k,), ("constant", a["init"]))}


@op("glu", [("dim", "int", -1)], traits=("pure",), doc="a * sigmoid(b) for the halves a, b of axis `dim`",
    axes=dim_axes(-1), **ACT)
def _glu(ins, a):
    (x,) = ins
    d = norm_axis(x, a["dim"])
    n = static(x[d].size, "the glu axis")
    if n % 2:
        raise OpError(f"glu halves axis {d}, whose size {n} is odd ({S.shape_str(x)})")
    a["dim"] = d
    return [with_axis(x, d, n // 2)], {}


@op("softmax", [("dim", "int", -1)], traits=("pure",), doc="softmax along `dim`",
    axes_note="always", axes=dim_axes(-1), **ACT)
def _softmax(ins, a):
    norm_axis(ins[0], a["dim"])
    return [ins[0]], {}


# ------------------------------------------------------------------ stochastic regularisers
op("dropout", [("p", "num", 0.5, PROB)], traits=("stochastic",), doc="dropout (training only)",
   family="stochastic", label=lambda n: f"dropout {n.attrs['p']:g}", axes=elementwise_axes, macs=0)(same_shape)
op("drop_path", [("p", "num", 0.0, Legal(0, 1, hi_open=True))], traits=("stochastic",),
   doc="stochastic depth per sample", family="stochastic", label=lambda n: f"drop_path {n.attrs['p']:g}",
   axes=elementwise_axes, macs=0)(same_shape)
