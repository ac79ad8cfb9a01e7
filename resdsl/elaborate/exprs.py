"""Compile-time expression evaluation (a mixin of the Elaborator).

Only `.res` expressions are evaluated, by walking the AST: no Python `eval`.
"""
from __future__ import annotations

import operator

from .. import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..frontend import ast
from ..ir import ops as O
from ..ir.graph import Value
from ..shapes import Size
from . import budget as B
from .values import CALLABLE, BlockRef, Builtin, Instance, MergeSpec, OpRef, Partial, call_builtin, type_name

MERGE_WORDS = {"learned": MergeSpec("learned"), "rezero": MergeSpec("learned")}

_ARITH = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


class ExprMixin:
    def truth(self, v, span):
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v != 0
        if isinstance(v, list):
            return bool(v)
        if v is None:
            return False
        raise ResdslError("type", f"a condition must be a bool, got {type_name(v)}", span)

    def evaluate(self, e, ctx):
        self.budget.step(e.span)
        m = getattr(self, "_e_" + type(e).__name__, None)
        if m is None:
            if isinstance(e, ast.Chain):
                return self.chain(e, ctx, start=False)
            raise ResdslError("syntax", f"`{type(e).__name__}` cannot be used as a value here", e.span)
        return m(e, ctx)

    def _e_Const(self, e, ctx):
        return e.value

    def _e_Name(self, e, ctx):
        v = ctx.lookup(e.id)
        if v is None:
            from ..elaborate.elaborator import InitValue
            if e.id in O.INIT_KINDS:
                return InitValue((e.id,))
            if e.id in MERGE_WORDS:
                return MERGE_WORDS[e.id]
            hint = did_you_mean(e.id, ctx.all_names() + list(O.INIT_KINDS))
            raise ResdslError("name", f"unknown name `{e.id}`", e.span, help=hint)
        if isinstance(v, tuple) and len(v) == 3 and v[0] in ("let", "alias", "cycle"):
            kind, item, env = v
            from .elaborator import Ctx
            sub = Ctx(None, "", {}, module=env)
            if kind == "let":
                env.names[item.name] = ("cycle", item, env)
                try:
                    val = self.evaluate(item.value, sub)
                except BaseException:
                    env.names[item.name] = v
                    raise
                env.names[item.name] = val  # memoise the module-level constant
                return val
            if kind == "cycle":
                raise ResdslError("name", f"`{e.id}` is defined in terms of itself", item.span,
                                  help="a top-level `let` cannot use its own name")
            return self.evaluate(item.value, sub)
        return v

    def _e_InRef(self, e, ctx):
        if ctx.in_value is None:
            raise ResdslError("name", "`in` is only defined inside a block or region", e.span)
        return ctx.in_value

    def _e_ListExpr(self, e, ctx):
        return B.check_value([self.evaluate(x, ctx) for x in e.items], e.span, "list")

    def _e_BinOp(self, e, ctx):
        a, b = self.evaluate(e.left, ctx), self.evaluate(e.right, ctx)
        if isinstance(a, Size) or isinstance(b, Size):
            return self._size_op(e, a, b)
        for v in (a, b):
            if isinstance(v, (Value,) + CALLABLE) or v is None:
                raise ResdslError("type", f"`{e.op}` does not apply to a {type_name(v)}", e.span)
        try:
            if e.op == "**" and isinstance(b, int) and abs(b) > 64 and isinstance(a, int) and abs(a) > 1:
                raise OverflowError("exponent too large")
            if e.op == "*":  # refuse `"a" * 10**10` before building it
                B.check_repeat(a, b, e.span)
                B.check_repeat(b, a, e.span)
            if e.op in ("/", "//", "%") and isinstance(a, (int, float)) and isinstance(b, (int, float)) and not b:
                raise ZeroDivisionError
            return B.check_value(_ARITH[e.op](a, b), e.span, "result")
        except ZeroDivisionError:
            raise ResdslError("value", "division by zero", e.span) from None
        except (TypeError, OverflowError) as ex:
            raise ResdslError("type", f"cannot compute {type_name(a)} {e.op} {type_name(b)}: {ex}", e.span) from None

    def _size_op(self, e, a, b):
        try:
            if e.op == "+":
                return S.add(a, b)
            if e.op == "-":
                return S.add(a, -b if isinstance(b, int) else -Size.lift(b))
            if e.op == "*" and (isinstance(a, int) or isinstance(b, int) or True):
                return S.mul(a, b)
            if e.op in ("/", "//") and isinstance(b, int) and b != 0:
                return S.truediv(a, b) if e.op == "/" else S.floordiv(a, b)
        except TypeError:
            pass
        raise ResdslError("type", f"`{e.op}` is not defined on the symbolic size {a} and {b}", e.span)

    def _e_UnaryOp(self, e, ctx):
        v = self.evaluate(e.operand, ctx)
        if e.op == "not":
            return not self.truth(v, e.operand.span)
        if isinstance(v, Size):
            return -v
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ResdslError("type", f"cannot negate a {type_name(v)}", e.span)
        return B.check_value(-v, e.span, "result")

    def _e_BoolOp(self, e, ctx):
        a = self.truth(self.evaluate(e.left, ctx), e.left.span)
        if e.op == "and":
            return a and self.truth(self.evaluate(e.right, ctx), e.right.span)
        return a or self.truth(self.evaluate(e.right, ctx), e.right.span)

    def _e_Compare(self, e, ctx):
        a, b = self.evaluate(e.left, ctx), self.evaluate(e.right, ctx)
        if e.op in ("==", "!="):
            eq = (a == b) if not (isinstance(a, CALLABLE) or isinstance(b, CALLABLE)) else a is b
            return eq if e.op == "==" else not eq
        if isinstance(a, Size) or isinstance(b, Size):
            raise ResdslError("type", f"cannot order the symbolic sizes {a} and {b}", e.span,
                              help="give that axis a number in the `input` shape")
        try:
            return _CMP[e.op](a, b)
        except TypeError:
            raise ResdslError("type", f"cannot compare {type_name(a)} {e.op} {type_name(b)}", e.span) from None

    def _e_CondExpr(self, e, ctx):
        if self.truth(self.evaluate(e.cond, ctx), e.cond.span):
            return self.evaluate(e.then, ctx)
        return self.evaluate(e.other, ctx)

    def _e_Index(self, e, ctx):
        v = self.evaluate(e.value, ctx)
        if isinstance(e.index, ast.Slice):
            lo = self.evaluate(e.index.lower, ctx) if e.index.lower is not None else None
            hi = self.evaluate(e.index.upper, ctx) if e.index.upper is not None else None
            if not isinstance(v, (list, str)):
                raise ResdslError("type", f"cannot slice a {type_name(v)}", e.span)
            for bound in (lo, hi):
                if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
                    raise ResdslError("type", f"slice bounds must be ints, got {type_name(bound)}", e.index.span)
            return v[lo:hi]
        i = self.evaluate(e.index, ctx)
        if isinstance(v, tuple) and all(isinstance(x, Value) for x in v):
            v = list(v)
        if not isinstance(v, (list, str)):
            raise ResdslError("type", f"cannot index a {type_name(v)}", e.span)
        if not isinstance(i, int) or isinstance(i, bool):
            raise ResdslError("type", f"an index must be an int, got {type_name(i)}", e.index.span)
        if not -len(v) <= i < len(v):
            raise ResdslError("value", f"index {i} is out of range for a list of {len(v)}", e.span)
        return v[i]

    def _e_Attr(self, e, ctx):
        v = self.evaluate(e.value, ctx)
        if isinstance(v, Value):
            if e.name == "shape":
                return [ax.size for ax in v.shape]
            if e.name == "rank":
                return len(v.shape)
            for ax in v.shape:
                if ax.name == e.name:
                    return ax.size
            names = [ax.name for ax in v.shape if ax.name]
            if e.name == "C" and len(v.shape) >= 2:
                return v.shape[O.channel_axis(v.shape)].size
            raise ResdslError("name", f"the tensor {S.shape_str(v.shape)} has no axis named `{e.name}`", e.span,
                              help=(did_you_mean(e.name, names) or
                                    f"named axes: {', '.join(names) or 'none'}; also .shape and .rank"))
        raise ResdslError("type", f"a {type_name(v)} has no attribute `{e.name}`", e.span)

    def _e_Call(self, e, ctx):
        from .elaborator import InitValue
        if isinstance(e.func, ast.Name) and ctx.lookup(e.func.id) is None and e.func.id in O.INIT_KINDS:
            args = [self.evaluate(a.value, ctx) for a in e.args]
            return InitValue((e.func.id,) + tuple(args))
        callee = self.evaluate(e.func, ctx)
        if isinstance(callee, Builtin):
            args, kw = [], {}
            for a in e.args:
                v = self.evaluate(a.value, ctx)
                if a.name:
                    kw[a.name] = v
                else:
                    args.append(v)
            return B.check_value(call_builtin(callee, args, kw, e.span), e.span, f"result of {callee.name}()")
        if isinstance(callee, CALLABLE):
            from .elaborator import takes_no_input
            tensors, args, kwargs = self.eval_args(e.args, ctx)
            if tensors or takes_no_input(callee):
                return self.apply(callee, tensors, args, kwargs, None, ctx, e.span)
            if isinstance(callee, Instance):
                raise ResdslError("type", f"`{callee.path}` is an instance; apply it to a tensor", e.span)
            return Partial(callee, tuple(args), kwargs)
        raise ResdslError("type", f"a {type_name(callee)} cannot be called", e.func.span)
