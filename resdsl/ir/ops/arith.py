"""Tensor arithmetic, merges and reductions: add, mul, sub, div, the scalar forms (neg, shift,
rsub, div_scalar, rdiv, scale), mean, sum and orthogonal.

`a - b`, `x * 2 + 1`, `-x` in a .res file become these ops (`x * c` is `scale`, `a + b` is
`add`, `a * b` is `mul`). Tensor-tensor ops broadcast like torch: sizes equal or 1,
aligned from the last axis.
"""
from __future__ import annotations

from .. import shapes as S
from ..shapes import Axis
from .core import Legal, OpError, axis_list, broadcast, check_merge, dim_axes, norm_axis, op, same_shape


def arith_broadcast(opname, x, y):
    try:
        return broadcast(x, y)
    except OpError:
        raise OpError(f"`{opname}` needs shapes that broadcast: {S.shape_str(x)} and {S.shape_str(y)}",
                      help="sizes must be equal or 1, aligned from the last axis") from None


# ------------------------------------------------------------------ tensor-tensor
@op("add", [], inputs=(2, None), traits=("pure", "linear", "elementwise", "merge"),
    doc="elementwise sum (broadcasting, e.g. a [1, L, D] position embedding)", family="merge", macs=0)
def _add(ins, a):
    out = ins[0]
    for other in ins[1:]:
        try:
            out = broadcast(out, other)
        except OpError:
            raise OpError(f"`add` needs matching (or broadcastable) shapes: {S.shape_str(out)} and "
                          f"{S.shape_str(other)}") from None
    return [out], {}


@op("mul", [], inputs=(2, 2), traits=("pure", "elementwise", "merge"), doc="elementwise product",
    family="merge", macs=0)
def _mul(ins, a):
    x, y = ins
    try:
        out = broadcast(x, y)
    except OpError:
        raise OpError(f"`mul` needs shapes that broadcast: {S.shape_str(x)} and {S.shape_str(y)}") from None
    return [out], {}


@op("sub", [], inputs=(2, 2), traits=("pure", "linear", "elementwise"), doc="a - b (broadcasting)",
    family="merge", label=lambda n: "−", macs=0)
def _sub(ins, a):
    return [arith_broadcast("sub", *ins)], {}


@op("div", [], inputs=(2, 2), traits=("pure", "elementwise"), doc="a / b (broadcasting)",
    family="merge", label=lambda n: "÷", macs=0)
def _div(ins, a):
    return [arith_broadcast("div", *ins)], {}


# ------------------------------------------------------------------ tensor-scalar
def _value(text):
    """A label such as `+ {v}` with the op's `value`: `+ 3`."""
    return lambda n: text.format(v=f"{n.attrs['value']:g}")


SCALAR = {"family": "scale", "macs": 0}
op("neg", [], traits=("elementwise", "pure", "linear"), doc="-x", label=lambda n: "negate", **SCALAR)(same_shape)
op("shift", [("value", "num")], traits=("elementwise", "pure"), doc="x + value", label=_value("+ {v}"),
   **SCALAR)(same_shape)
op("rsub", [("value", "num")], traits=("elementwise", "pure"), doc="value - x", label=_value("{v} −"),
   **SCALAR)(same_shape)
op("div_scalar", [("value", "num")], traits=("elementwise", "pure", "linear"), doc="x / value",
   label=_value("÷ {v}"), **SCALAR)(same_shape)
op("rdiv", [("value", "num")], traits=("elementwise", "pure"), doc="value / x", label=_value("{v} ÷"),
   **SCALAR)(same_shape)


def _scale_label(n):
    f = n.attrs["factor"]
    return f"× {f:g}" if isinstance(f, (int, float)) else f"× {f}"


op("scale", [("factor", "num")], traits=("elementwise", "pure", "linear", "channel_scale"),
   doc="multiply by a constant", label=_scale_label, **SCALAR)(same_shape)


# ------------------------------------------------------------------ reductions
def _reduce_axes(n, r):
    """A reduction of one tensor acts on its `dim` axes; a merge of several on the whole bundle."""
    if len(n.inputs) != 1:
        return None
    return list(range(1, r)) if n.attrs.get("dim") is None else axis_list(n.attrs["dim"], r)


_DIM_WANT = {"mean": "an int or a non-empty list of ints", "sum": "an int or a list of ints"}


def _reduce(x, a, opname):
    dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else [a["dim"]]
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise OpError(f"`{opname}` dim must be {_DIM_WANT[opname]}, got {a['dim']!r}", kind="type")
    dims = sorted({norm_axis(x, d) for d in dims})
    a["dim"] = tuple(dims) if len(dims) > 1 else dims[0]
    if a["keepdim"]:
        return [tuple(Axis(1, ax.name) if i in dims else ax for i, ax in enumerate(x))], {}
    return [tuple(ax for i, ax in enumerate(x) if i not in dims)], {}


@op("mean", [("dim", "any", None), ("keepdim", "bool", False)], inputs=(1, None), traits=("pure", "linear"),
    doc="mean of several tensors (a merge), or a reduction over `dim` of one",
    family="merge", axes_note="always", axes=_reduce_axes, macs=0)
def _mean(ins, a):
    if len(ins) > 1:
        check_merge(ins, "mean")
        a["_merge"] = True
        return [ins[0]], {}
    (x,) = ins
    if a["dim"] is None:
        raise OpError("`mean` of one tensor needs `dim=`", help="e.g. mean(dim=1) to average tokens", kind="type")
    return _reduce(x, a, "mean")


@op("sum", [("dim", "any"), ("keepdim", "bool", False)], traits=("pure", "linear"), doc="sum over the axes `dim`",
    family="layout", axes=_reduce_axes, macs=0)
def _sum(ins, a):
    (x,) = ins
    return _reduce(x, a, "sum")


@op("orthogonal", [("dim", "int", -1), ("eps", "num", 1e-6, Legal(0))], inputs=(2, 2), traits=("pure",),
    doc="orthogonal(f, x) = f - (<x, f> / (<x, x> + eps)) x along `dim`: the part of f orthogonal to x",
    family="merge", axes=dim_axes(-1), macs=0)
def _orth(ins, a):
    f, x = ins
    check_merge([f, x], "orthogonal")
    a["dim"] = norm_axis(f, a["dim"])
    return [f], {}
