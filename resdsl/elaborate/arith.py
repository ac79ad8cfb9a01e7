"""Tensor arithmetic in expressions: `a + b`, `x * 2 + 1`, `6 - x`, `x / 2`, `-x`.

Each operator becomes one IR op (add, sub, mul, div between tensors; shift, rsub, scale,
div_scalar, rdiv with a number; neg). Tensors broadcast as in torch (sizes equal or 1, from
the last axis). On top of that the names of the axes must agree: two axes of the same size
but different names (`[N, L, D]` against `[N, D, L]` with L = D) are an error, since adding
them is almost always a missing transpose; `add(a, b)` skips that check.
"""
from __future__ import annotations

from ..ir import shapes as S
from ..diagnostics import ResdslError
from ..ir import ops as O
from ..ir.graph import Value

_TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def binop(el, e, a, b, ctx):
    """`a OP b` where at least one side is a tensor."""
    def apply(name, tensors, args=()):
        return el.apply_op(O.OPS[name], tensors, list(args), {}, None, ctx, e.span)

    both = isinstance(a, Value) and isinstance(b, Value)
    if e.op not in _TENSOR_OPS:
        raise ResdslError("type", f"`{e.op}` does not apply to tensors", e.span,
                          help="tensors take + - * / (with tensors or numbers) and unary -")
    if both:
        check_names(e, a, b)
        return apply(_TENSOR_OPS[e.op], [a, b])
    t, c, left = (a, b, False) if isinstance(a, Value) else (b, a, True)
    if not is_num(c):
        from .values import type_name
        raise ResdslError("type", f"`{e.op}` between a Tensor and a {type_name(c)}", e.span,
                          help="tensor arithmetic takes a tensor and a number, or two tensors")
    c = float(c)
    if e.op == "+":
        return apply("shift", [t], [c])
    if e.op == "*":
        return apply("scale", [t], [c])
    if e.op == "-":
        return apply("rsub", [t], [c]) if left else apply("shift", [t], [-c])
    if c == 0 and not left:
        raise ResdslError("value", "division of a tensor by zero", e.span)
    return apply("rdiv", [t], [c]) if left else apply("div_scalar", [t], [c])


def neg(el, e, v, ctx):
    return el.apply_op(O.OPS["neg"], [v], [], {}, None, ctx, e.span)


def check_names(e, a: Value, b: Value, op: str | None = None):
    """Shapes that broadcast, with matching axis names where both sides have a full axis. `op`: the
    function's name for a call (`maximum(a, b)`), whose expression has no operator."""
    op = op or e.op
    x, y = a.shape, b.shape
    label = f"left: {named_str(x)}, right: {named_str(y)}"
    try:
        O.broadcast(x, y)
    except O.OpError:
        raise ResdslError("shape", f"`{op}` needs tensors whose shapes broadcast", e.span, label=label,
                          help="sizes must be equal or 1, aligned from the last axis") from None
    for p, q in zip(reversed(x), reversed(y)):
        if p.name and q.name and p.name != q.name and p.size != 1 and q.size != 1:
            raise ResdslError("shape", f"`{op}` lines up axis `{p.name}` with axis `{q.name}`", e.span,
                              label=label,
                              help="transpose or rearrange one side first; `add(a, b)` / `mul(a, b)` ignore names")


def named_str(shape) -> str:
    """`[N, C=64, H, W]`: sizes with the axis names (a symbolic axis is its own name)."""
    parts = []
    for ax in shape:
        size = S.dim_str(ax.size)
        parts.append(size if not ax.name or ax.name == size else f"{ax.name}={size}")
    return "[" + ", ".join(parts) + "]"
