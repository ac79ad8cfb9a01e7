"""Elementwise math on tensors in expressions: `a // b`, `a % b`, `a ** b`, the comparisons
(`x > 0` is a bool tensor), `where(mask, a, b)`, `minimum` / `maximum` (and `min` / `max` given a
tensor), `pow`, `arange(x.L)`, and the dtype rule that keeps bool tensors out of float ops.

Each operator or call becomes one op of resdsl/ir/ops/elementwise_math.py. A number on either
side is the op's `value` (`2 ** x` is `pow(x, value=2, left=true)`; `0 < x` is `x > 0`).
Two tensors broadcast like torch and must agree on axis names, as `+` does (arith.py).

Dtypes: a comparison gives a bool tensor. A bool tensor is accepted only as the mask of
`where`; anywhere else (`mask + x`, `relu(mask)`, `where(x, a, b)` with a float mask) `check`
says so and how to turn it into 0/1 floats (`where(mask, 1.0, 0.0)`).
"""
from __future__ import annotations

from ..diagnostics import ResdslError
from ..ir import ops as O
from ..ir import shapes as S
from ..ir.graph import Value
from ..ir.ops.elementwise_math import FLIPPED
from ..ir.shapes import Size
from .arith import check_names, is_num
from .values import Builtin, OpRef

PRECEDENCE_HELP = ("operators bind tighter than `->`: `x -> reshape([4, 8]) * 3` applies `*` to the block "
                   "`reshape([4, 8])`; write `(x -> reshape([4, 8])) * 3`")
BINOPS = {"//": "floordiv", "%": "mod", "**": "pow"}
COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
# calls with a tensor among their arguments that this module builds (arguments kept in order)
CALLS = frozenset(("where", "minimum", "maximum", "min", "max", "pow", "arange"))
_OP_OF_CALL = {"min": "minimum", "max": "maximum"}


def _type_name(v):
    from .values import type_name
    return type_name(v)


def _apply(el, name, tensors, kw, ctx, span):
    return el.apply_op(O.OPS[name], list(tensors), [], dict(kw), None, ctx, span)


def _number(e, op, c):
    if not is_num(c):
        raise ResdslError("type", f"`{op}` between a Tensor and a {_type_name(c)}", e.span,
                          help="tensor math takes a tensor and a number, or two tensors")
    return float(c)


def binop(el, e, a, b, ctx):
    """`a // b`, `a % b`, `a ** b` where at least one side is a tensor."""
    name = BINOPS[e.op]
    if isinstance(a, Value) and isinstance(b, Value):
        check_names(e, a, b)
        return _apply(el, name, [a, b], {}, ctx, e.span)
    if isinstance(a, Value):
        c = _number(e, e.op, b)
        if name in ("floordiv", "mod") and c == 0:
            raise ResdslError("value", f"`{e.op}` of a tensor by zero", e.span)
        return _apply(el, name, [a], {"value": c}, ctx, e.span)
    c = _number(e, e.op, a)
    return _apply(el, name, [b], {"value": c, "left": True}, ctx, e.span)


def is_tensor_compare(op, a, b) -> bool:
    """`x < y`, `x > 0`, `x == y`: a comparison on tensors. `==` / `!=` of a tensor and anything
    but a tensor or a number (`v != none`, a block) keep their identity meaning."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return False
    other = b if isinstance(a, Value) else a
    return op not in ("==", "!=") or isinstance(other, Value) or is_num(other)


def compare(el, e, a, b, ctx):
    """`a < b` (and <=, >, >=, ==, !=) where at least one side is a tensor: a bool tensor."""
    name = COMPARE[e.op]
    if isinstance(a, Value) and isinstance(b, Value):
        check_names(e, a, b)
        return _apply(el, name, [a, b], {}, ctx, e.span)
    if isinstance(a, Value):
        return _apply(el, name, [a], {"value": _number(e, e.op, b)}, ctx, e.span)
    return _apply(el, FLIPPED[name], [b], {"value": _number(e, e.op, a)}, ctx, e.span)


def call_name(callee) -> str | None:
    """The name of a call this module builds (`where`, `min`, ...), or None for any other callee."""
    if isinstance(callee, Builtin) and callee.name in ("min", "max"):
        return callee.name
    if isinstance(callee, OpRef) and callee.name in CALLS:
        return callee.name
    return None


def chain_callee(callee):
    """In a chain, `-> min(0.5)` / `-> max(y)` are the tensor ops minimum / maximum."""
    from .values import Builtin, OpRef
    if isinstance(callee, Builtin) and callee.name in _OP_OF_CALL:
        return OpRef(O.OPS[_OP_OF_CALL[callee.name]])
    return callee


def call(el, callee, fname: str, e, ctx):
    """`where(m, a, b)`, `minimum(a, b)`, `min(x, 0.5)`, `pow(2, x)`, `arange(x.L)`: the op when a
    tensor (or, for arange, a size) is among the arguments, evaluated once and in order. Without
    a tensor: `min` / `max` compute on numbers, `pow(2, 3)` is 8, and an op with some arguments
    is a partial application for a chain (`x -> minimum(0.5)`), as for any op."""
    from . import budget as B
    from .values import Builtin, OpRef, Partial, call_builtin
    pos, kw = [], {}
    for a in e.args:
        v = el.evaluate(a.value, ctx)
        if a.name is None:
            pos.append((v, a.span))
        elif a.name in kw:
            raise ResdslError("type", f"argument `{a.name}` given twice", a.span)
        else:
            kw[a.name] = v
    values = [v for v, _ in pos]
    if fname == "arange" and (values or kw):
        return _arange(el, e, values, kw, ctx)
    if not any(isinstance(v, Value) for v in values) and not any(isinstance(v, Value) for v in kw.values()):
        if isinstance(callee, Builtin):
            return B.check_value(call_builtin(callee, values, kw, e.span), e.span, f"result of {fname}()")
        if fname == "pow" and len(values) == 2 and not kw and all(is_num(v) for v in values):
            return _number_pow(e, *values)
        if fname in ("minimum", "maximum") and len(values) == 2 and not kw and all(is_num(v) for v in values):
            return min(values) if fname == "minimum" else max(values)
        return Partial(callee, tuple(values), kw) if isinstance(callee, OpRef) else None
    if kw:
        raise ResdslError("type", f"`{fname}` with tensors takes its arguments by position", e.span,
                          help=f"e.g. {fname}(x, 0.5)")
    name = _OP_OF_CALL.get(fname, fname)
    if name == "where":
        return _where(el, e, pos, ctx)
    if len(values) != 2:
        raise ResdslError("type", f"`{fname}` of tensors takes two arguments (tensors or numbers), got "
                                  f"{len(values)}", e.span, help=f"e.g. {fname}(x, y) or {fname}(x, 0.5)")
    a, b = values
    if isinstance(a, Value) and isinstance(b, Value):
        check_names(e, a, b, fname)
        return _apply(el, name, [a, b], {}, ctx, e.span)
    t, c, left = (a, b, False) if isinstance(a, Value) else (b, a, True)
    kw = {"value": _number(e, fname, c)}
    if name == "pow" and left:
        kw["left"] = True
    return _apply(el, name, [t], kw, ctx, e.span)


def _number_pow(e, a, b):
    from . import budget as B
    if isinstance(b, int) and abs(b) > 64 and isinstance(a, int) and abs(a) > 1:
        raise ResdslError("type", "pow(): exponent too large", e.span)
    try:
        return B.check_value(a ** b, e.span, "result of pow()")
    except ZeroDivisionError:
        raise ResdslError("value", "division by zero", e.span) from None
    except (TypeError, OverflowError) as ex:
        raise ResdslError("type", f"pow(): {ex}", e.span) from None


def _where(el, e, pos, ctx):
    if len(pos) != 3:
        raise ResdslError("type", f"`where` takes three arguments (mask, a, b), got {len(pos)}", e.span,
                          help="e.g. where(x > 0, x, 0.0)")
    (m, ms), (a, _), (b, _) = pos
    if not isinstance(m, Value):
        raise ResdslError("type", f"the mask of `where` must be a bool tensor, got {_type_name(m)}", ms,
                          help="compare tensors to make one: where(x > 0, x, 0.0)")
    tensors, kw = [m], {}
    for v, key in ((a, "then"), (b, "other")):
        if isinstance(v, Value):
            tensors.append(v)
        else:
            kw[key] = _number(e, "where", v)
    return _apply(el, "where", tensors, kw, ctx, e.span)


def _arange(el, e, values, kw, ctx):
    """`arange(x.L)`: counts along an axis whose size is read from a tensor at run time;
    `arange(8)`: a fixed count; `arange(x, dim=1)`: the axis named by position."""
    if len(values) == 1 and isinstance(values[0], Value):
        return _apply(el, "arange", [values[0]], {"dim": kw.get("dim")}, ctx, e.span)
    if len(values) != 1 or kw:
        raise ResdslError("type", "`arange` takes one size: arange(x.L), arange(16) or arange(x, dim=1)", e.span)
    n = values[0]
    if isinstance(n, bool) or not isinstance(n, (int, Size)):
        raise ResdslError("type", f"`arange` takes an int or an axis size, got {_type_name(n)}", e.span,
                          help="e.g. arange(x.L) for the size of axis L of x")
    if isinstance(n, int):
        like = _any_tensor(el, ctx)
        if like is None:
            raise ResdslError("type", "`arange` needs a tensor in scope to run beside", e.span)
        return _apply(el, "arange", [like], {"n": n}, ctx, e.span)
    found = _tensor_with_axis(el, ctx, n)
    if found is None:
        raise ResdslError("shape", f"`arange({n})`: no tensor here has an axis of the symbolic size {n} to read "
                                   "it from at run time", e.span,
                          help="give arange the size of an axis of a named tensor of this body, e.g. arange(x.L), "
                               "or name the axis by position: arange(x, dim=1)")
    v, d = found
    return _apply(el, "arange", [v], {"dim": d}, ctx, e.span)


def _candidates(el, ctx):
    if isinstance(ctx.current, Value):
        yield ctx.current
    if isinstance(ctx.in_value, Value):
        yield ctx.in_value
    for v in ctx.env.values():  # named tensors of this body (a block sees its own inputs only,
        if isinstance(v, Value):  # so arange never reads a tensor from inside another module)
            yield v


def _any_tensor(el, ctx):
    return next(iter(_candidates(el, ctx)), None)


def _tensor_with_axis(el, ctx, size):
    for v in _candidates(el, ctx):
        for i, ax in enumerate(v.shape):
            if ax.size == size:
                return v, i
    return None


# ------------------------------------------------------------------ dtypes
def check_dtypes(od, tensors, span):
    """A bool tensor (from a comparison) only as the mask of `where`; floats everywhere else."""
    if "size_input" in od.traits:  # arange reads only the size (and device) of its input
        return
    mask_first = "mask_input" in od.traits
    for i, t in enumerate(tensors):
        want_bool = mask_first and i == 0
        is_bool = getattr(t, "dtype", "float32") == "bool"
        if is_bool and not want_bool:
            raise ResdslError("type", f"`{od.name}` takes float tensors; input {i} {S.shape_str(t.shape)} is a "
                                      "bool tensor (the result of a comparison)", span,
                              help="turn the mask into 0/1 floats with where(mask, 1.0, 0.0), or use it as the "
                                   "mask of where(mask, a, b)")
        if want_bool and not is_bool:
            raise ResdslError("type", f"the mask of `where` must be a bool tensor, got a float tensor "
                                      f"{S.shape_str(t.shape)}", span,
                              help="compare to make a mask: where(x > 0, x, 0.0)")


def output_dtype(attrs) -> str | None:
    """The dtype an op's shape rule gave its outputs (comparisons: bool), or None (float32)."""
    return attrs.get("_dtype")
