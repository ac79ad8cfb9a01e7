"""The torch lowerings of resdsl/ir/ops/elementwise_math.py: Python's operators where torch reads
them so (`a // b`, `a % b`, `a ** b`, `a < b`), `torch.minimum` / `torch.maximum` (`torch.clamp`
with a number), `torch.where`, `torch.sin` ..., and `torch.arange` over an input axis size
read at run time (`torch.arange(x.size(1), dtype=torch.float32, device=x.device)`), so the
module tree and the standalone file compute the same thing with readable operators.
"""
from __future__ import annotations

import operator

import torch

from .registry import lowering

_OPERATOR = {"floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "lt": operator.lt,
             "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}


@lowering(*_OPERATOR)
def _operator(g, n, ins):
    fn, v = _OPERATOR[n.op], n.attrs["value"]
    if v is None:
        return g.call_function(fn, (ins[0], ins[1]))
    if n.attrs.get("left"):
        if n.op == "pow":  # `-2.0 ** x` would read as -(2.0 ** x) in the file: torch.pow(-2.0, x)
            return g.call_function(torch.pow, (v, ins[0]))
        return g.call_function(fn, (v, ins[0]))
    return g.call_function(fn, (ins[0], v))


@lowering("minimum", "maximum")
def _min_max(g, n, ins):
    v = n.attrs["value"]
    if v is None:
        return g.call_function(getattr(torch, n.op), (ins[0], ins[1]))
    return g.call_function(torch.clamp, (ins[0],), {"max" if n.op == "minimum" else "min": v})


@lowering("where")
def _where(g, n, ins):
    a = n.attrs
    rest = list(ins[1:])
    then = a["then"] if a["then"] is not None else rest.pop(0)
    other = a["other"] if a["other"] is not None else rest.pop(0)
    return g.call_function(torch.where, (ins[0], then, other))


for _name in ("sin", "cos", "floor", "ceil"):
    def _unary(g, n, ins, _fn=getattr(torch, _name)):
        return g.call_function(_fn, (ins[0],))
    lowering(_name)(_unary)


@lowering("arange")
def _arange(g, n, ins):
    x = ins[0]
    size = n.attrs["n"] if n.attrs["dim"] is None else g.call_method("size", (x, n.attrs["dim"]))
    device = g.call_function(getattr, (x, "device"))
    return g.call_function(torch.arange, (size,), {"dtype": torch.float32, "device": device})
