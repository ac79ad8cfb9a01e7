"""The ONNX lowerings of resdsl/ir/ops/elementwise_math.py.

* `//` is Floor(Div(a, b)); `%` is torch's remainder made exactly: Mod(fmod=1) (the
  remainder with the sign of a, exact in floating point), plus b where it is non-zero and its
  sign differs from b's (ONNX's Mod takes floats only with fmod=1).
* `**` is Pow; `minimum` / `maximum` are Min / Max; the comparisons are Less ... Equal, and
  `!=` is Not(Equal): their outputs are ONNX bools, which Where takes as its condition.
* `arange` over an axis read at run time is Range(0, Cast(size), 1) in float, so a
  sinusoidal position encoding follows a dynamic sequence axis; a fixed count is a constant.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .builder import lowering

_COMPARE = {"lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual", "eq": "Equal"}


def _operands(b, n, ins):
    """(left, right) tensor names, the number `value` made a float constant on its side."""
    v = n.attrs.get("value")
    if v is None:
        return ins[0], ins[1]
    c = b.const(float(v), name="value")
    return (c, ins[0]) if n.attrs.get("left") else (ins[0], c)


@lowering(*_COMPARE)
def _compare(b, n, ins):
    return b.final(_COMPARE[n.op], list(_operands(b, n, ins)), n)


@lowering("ne")
def _ne(b, n, ins):
    return b.final("Not", [b.op("Equal", list(_operands(b, n, ins)))], n)


@lowering("pow")
def _pow(b, n, ins):
    return b.final("Pow", list(_operands(b, n, ins)), n)


@lowering("minimum", "maximum")
def _min_max(b, n, ins):
    return b.final("Min" if n.op == "minimum" else "Max", list(_operands(b, n, ins)), n)


@lowering("floordiv")
def _floordiv(b, n, ins):
    return b.final("Floor", [b.op("Div", list(_operands(b, n, ins)))], n)


@lowering("mod")
def _mod(b, n, ins):
    x, y = _operands(b, n, ins)
    r = b.op("Mod", [x, y], fmod=1)  # sign of x, exact
    zero = b.const(0.0, name="zero")
    differ = b.op("Xor", [b.op("Less", [r, zero]), b.op("Less", [y, zero])])
    fix = b.op("And", [differ, b.op("Not", [b.op("Equal", [r, zero])])])
    return b.final("Where", [fix, b.op("Add", [r, y]), r], n)


@lowering("where")
def _where(b, n, ins):
    a = n.attrs
    rest = list(ins[1:])
    then = b.const(float(a["then"]), name="then") if a["then"] is not None else rest.pop(0)
    other = b.const(float(a["other"]), name="other") if a["other"] is not None else rest.pop(0)
    return b.final("Where", [ins[0], then, other], n)


_UNARY = {"sin": "Sin", "cos": "Cos", "floor": "Floor", "ceil": "Ceil"}


@lowering(*_UNARY)
def _unary(b, n, ins):
    return b.final(_UNARY[n.op], ins, n)


@lowering("arange")
def _arange(b, n, ins):
    a = n.attrs
    if a["dim"] is None or isinstance(n.inputs[0].shape[a["dim"]].size, int):
        count = a["n"] if a["dim"] is None else n.inputs[0].shape[a["dim"]].size
        return b.final("Identity", [b.const(np.arange(count, dtype=np.float32), name="arange")], n)
    d = a["dim"]
    size = b.op("Shape", [ins[0]], start=d, end=d + 1)
    size = b.op("Squeeze", [size, b.ints([0], "axes")])
    limit = b.op("Cast", [size], to=TensorProto.FLOAT)
    return b.final("Range", [b.const(0.0, name="zero"), limit, b.const(1.0, name="one")], n)
