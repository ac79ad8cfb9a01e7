"""Compile-time expression evaluation (a mixin of the Elaborator).

Only `.res` expressions are evaluated, by walking the AST: no Python `eval`.
"""
from __future__ import annotations

import operator

from ..ir import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..frontend import ast
from ..ir import ops as O
from ..ir.graph import Value
from ..ir.shapes import Size
from . import arith, tensor_math
from . import budget as B
from .callees import takes_no_input
from .values import Built
from .context import Ctx, InitValue, add_frame
from . import templates, traps  # string templates; lists that mix tensors and ops
from .values import (
    CALLABLE,
    AmbiguousIn,
    BlockRef,
    Builtin,
    Fn,
    Instance,
    MergeSpec,
    OpRef,
    Partial,
    call_builtin,
    type_name,
)

MERGE_WORDS = {"learned": MergeSpec("learned"), "rezero": MergeSpec("learned")}

_ARITH = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
MAX_FN_DEPTH = 64  # nested `fn` calls (recursion is bounded like block recursion)
MAX_COMP_ITEMS = 100_000  # items one list comprehension may produce

_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


_NUM = (int, float)  # exactly (not bool): numbers whose arithmetic needs none of the checks for other values
_EVAL: dict = {}  # (elaborator class, expression class) -> its _e_ method (None: none)


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
        b = self.budget  # = b.step(e.span), inline: the commonest call of all
        b.steps += 1
        if b.steps > b.max_steps:
            b.step(e.span, 0)
        m = _EVAL.get((type(self), type(e)), _EVAL)
        if m is _EVAL:  # the method for this kind of expression, found once per class
            m = _EVAL[(type(self), type(e))] = getattr(type(self), "_e_" + type(e).__name__, None)
        if m is None:
            if isinstance(e, ast.Chain):
                return self.chain(e, ctx, start=False)
            raise ResdslError("syntax", f"`{type(e).__name__}` cannot be used as a value here", e.span)
        return m(self, e, ctx)

    def _e_Const(self, e, ctx):
        v = e.value
        if isinstance(v, str) and ("{" in v or "}" in v):
            return templates.fill(self, e, ctx)  # `"stage{s + 2}"`: a template, as `as` names are
        return v

    def _e_Name(self, e, ctx):
        v = ctx.lookup(e.id)
        if v is None and ctx.has(e.id):
            return None
        if v is None:
            if e.id in O.INIT_KINDS:
                return InitValue((e.id,))
            if e.id in MERGE_WORDS:
                return MERGE_WORDS[e.id]
            hint = did_you_mean(e.id, ctx.all_names() + list(O.INIT_KINDS))
            raise ResdslError("name", f"unknown name `{e.id}`", e.span, help=hint)
        if isinstance(v, tuple) and len(v) == 3 and v[0] in ("let", "alias", "cycle"):
            kind, item, env = v
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
                                  help="a top-level `let` or `network X = ...` cannot use its own name")
            env.names[item.name] = ("cycle", item, env)  # `network a = a(...)` would recurse forever
            try:
                return self.evaluate(item.value, sub)
            finally:
                env.names[item.name] = v
        return v

    def _e_InRef(self, e, ctx):
        if ctx.in_value is None:
            raise ResdslError("name", "`in` is only defined inside a block or region", e.span)
        if isinstance(ctx.in_value, AmbiguousIn):
            names = ctx.in_value.names
            raise ResdslError("name", f"`in` is ambiguous in a block with the inputs {', '.join(names)}", e.span,
                              help=f"name the input you mean, e.g. `{names[0]}.C` instead of `in.C`")
        return ctx.in_value

    def _e_ListExpr(self, e, ctx):
        v = B.check_value([self.evaluate(x, ctx) for x in e.items], e.span, "list")
        traps.check_list(v, e.span)
        return v

    def _e_BinOp(self, e, ctx):
        a, b = self.evaluate(e.left, ctx), self.evaluate(e.right, ctx)
        if type(a) in _NUM and type(b) in _NUM and (b or e.op not in ("/", "//", "%")) and \
                (e.op != "**" or abs(b) <= 64 or abs(a) <= 1 or type(a) is not int or type(b) is not int):
            try:  # two numbers (the common case): what the checks below come to for them
                r = _ARITH[e.op](a, b)
            except (TypeError, OverflowError, ZeroDivisionError):
                pass  # the way below says what is wrong
            else:
                return B.check_value(r, e.span, "result")
        if isinstance(a, Value) or isinstance(b, Value):
            if e.op in tensor_math.BINOPS:
                return tensor_math.binop(self, e, a, b, ctx)
            if not isinstance(a, CALLABLE) and not isinstance(b, CALLABLE):
                return arith.binop(self, e, a, b, ctx)
        if isinstance(a, Size) or isinstance(b, Size):
            return self._size_op(e, a, b)
        for v in (a, b):
            if isinstance(v, (Value,) + CALLABLE) or v is None:
                raise ResdslError("type", f"`{e.op}` does not apply to a {type_name(v)}", e.span,
                                  help=tensor_math.PRECEDENCE_HELP if isinstance(v, CALLABLE) else None)
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
        for v in (a, b):  # a string would reach Fraction(): "1" silently a number, "a" a ValueError
            if isinstance(v, bool) or not isinstance(v, (int, float, Size)):
                other = b if v is a else a
                raise ResdslError("type", f"`{e.op}` does not apply to the symbolic size {other} and a "
                                          f"{type_name(v)}", e.span,
                                  help="size arithmetic takes numbers and sizes, e.g. `in.H // 2`")
        try:
            if e.op == "+":
                return S.add(a, b)
            if e.op == "-":
                return S.add(a, -b if isinstance(b, int) else -Size.lift(b))
            if e.op == "*" and (isinstance(a, int) or isinstance(b, int) or True):
                return S.mul(a, b)
            if e.op in ("/", "//") and isinstance(b, int) and b != 0:
                return S.truediv(a, b) if e.op == "/" else S.floordiv(a, b)
        except (TypeError, ValueError):
            pass
        raise ResdslError("type", f"`{e.op}` is not defined on the symbolic size {a} and {b}", e.span)

    def _e_UnaryOp(self, e, ctx):
        v = self.evaluate(e.operand, ctx)
        if e.op == "not":
            return not self.truth(v, e.operand.span)
        if isinstance(v, Size):
            return -v
        if isinstance(v, Value):
            return arith.neg(self, e, v, ctx)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ResdslError("type", f"cannot negate a {type_name(v)}", e.span)
        return B.check_value(-v, e.span, "result")

    def _e_BoolOp(self, e, ctx):
        # Python semantics: the deciding operand itself (`min_value or divisor` is a number)
        a = self.evaluate(e.left, ctx)
        t = self.truth(a, e.left.span)
        if (e.op == "and") != t:
            return a
        b = self.evaluate(e.right, ctx)
        self.truth(b, e.right.span)  # still must be a valid condition value
        return b

    def _e_Compare(self, e, ctx):
        a, b = self.evaluate(e.left, ctx), self.evaluate(e.right, ctx)
        if type(a) in _NUM and type(b) in _NUM:  # two numbers (the common case)
            return _CMP[e.op](a, b)
        if tensor_math.is_tensor_compare(e.op, a, b):  # `x > 0`: a bool tensor (`v != none` stays a
            return tensor_math.compare(self, e, a, b, ctx)  # test of whether an optional tensor is given)
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
        if isinstance(v, Value) and isinstance(i, Value):  # table[idx]: gather by a buffer of indices
            return self.apply_op(O.OPS["index"], [v, i], [], {}, None, ctx, e.span)
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
        if isinstance(e.func, ast.Name) and ctx.lookup(e.func.id) is None and e.func.id in O.INIT_KINDS:
            args = [self.evaluate(a.value, ctx) for a in e.args]
            return InitValue((e.func.id,) + tuple(args))
        callee = self.evaluate(e.func, ctx)
        if isinstance(callee, Fn):
            return self.call_fn(callee, e, ctx)
        math_name = tensor_math.call_name(callee)
        if math_name is not None:  # where, minimum, min, pow, arange: arguments kept in their order
            return tensor_math.call(self, callee, math_name, e, ctx)
        if isinstance(callee, Builtin) and callee.name in O.OPS:
            # `abs(y)`, `sqrt(y)`, `sum(y, dim=1)`: the tensor op when a tensor is given, else the builtin
            tensors, args, kw = self.eval_args(e.args, ctx)
            if tensors:
                return self.apply(OpRef(O.OPS[callee.name]), tensors, args, kw, None, ctx, e.span)
            return call_builtin(callee, args, kw, e.span)
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
            tensors, args, kwargs = self.eval_args(e.args, ctx, callee)
            if tensors or takes_no_input(callee):
                return self.apply(callee, tensors, args, kwargs, None, ctx, e.span)
            if isinstance(callee, Instance):
                raise ResdslError("type", f"`{callee.path}` is an instance; apply it to a tensor", e.span)
            return Partial(callee, tuple(args), kwargs)
        raise ResdslError("type", f"a {type_name(callee)} cannot be called", e.func.span)

    # ------------------------------------------------------------ fn and comprehensions
    def fn_lets(self, fn: Fn, env: dict):
        """`fn f(v) { let a = v * 2; a + 1 }`: the lets, in order, each seeing the params and the
        lets before it (and the closure), added to `env`."""
        if not fn.defn.lets:
            return
        lenv = dict(fn.closure or {})
        lenv.update(env)
        lctx = Ctx(None, "", lenv, module=fn.module)
        for lt in fn.defn.lets:
            lenv[lt.name] = env[lt.name] = self.evaluate(lt.value, lctx)

    def call_fn(self, fn: Fn, e, ctx):
        """Bind the arguments like a block's parameters, then evaluate the body expression in
        the function's own scope (its module, or the body that defined it, plus the params)."""
        args, kw = [], {}
        for a in e.args:
            v = self.evaluate(a.value, ctx)
            if isinstance(v, Value) or (isinstance(v, tuple) and v and isinstance(v[0], Value)):
                raise ResdslError("type", f"`{fn.name}` is a compile-time function; it cannot take a tensor",
                                  a.span, help="use a `block` for computations on tensors")
            if a.name is None:
                args.append(v)
            elif a.name in kw:
                raise ResdslError("type", f"argument `{a.name}` given twice", a.span)
            else:
                kw[a.name] = v
        ref = BlockRef(fn.defn, fn.module)
        depth = getattr(self, "fn_depth", 0)
        if depth >= MAX_FN_DEPTH:
            raise ResdslError("limit", f"`{fn.name}` calls nest deeper than {MAX_FN_DEPTH}", e.span,
                              help="make the recursion stop: e.g. `fn f(n) = 1 if n <= 1 else n * f(n - 1)`")
        self.fn_depth = depth + 1
        try:
            env = self.bind_params(ref, args, kw, e.span, closure=fn.closure)
            self.fn_lets(fn, env)
            body_env = dict(fn.closure or {})
            body_env.update(env)
            out = self.evaluate(fn.defn.value, Ctx(None, "", body_env, module=fn.module))
            if type(out) is list and fn.closure is None:  # remembers the call: a buffer's torch file
                out = Built(out, fn, [env[p.name] for p in fn.defn.params], _arg_names(fn, e.args))
            return out
        except ResdslError as err:
            add_frame(err, f"in fn {fn.name} (called at {e.span.where})")
            raise
        finally:
            self.fn_depth = depth

    def _e_ListComp(self, e, ctx):
        out = []

        def walk(k, env):
            if k == len(e.clauses):
                out.append(self.evaluate(e.elt, ctx.sub(env=env, current=ctx.current, in_value=ctx.in_value)))
                if len(out) > MAX_COMP_ITEMS:
                    raise ResdslError("limit", f"a list comprehension gives over {MAX_COMP_ITEMS} items", e.span)
                return
            cl = e.clauses[k]
            sub = ctx.sub(env=env, current=ctx.current, in_value=ctx.in_value)
            it = self.evaluate(cl.iterable, sub)
            if isinstance(it, tuple) and it and all(isinstance(t, Value) for t in it):
                it = list(it)  # a list of tensors (`parts = split(...)`)
            if not isinstance(it, (list, str)):
                raise ResdslError("type", f"`for` needs a list, got {type_name(it)}", cl.iterable.span)
            for x in it:
                inner = dict(env)
                self.bind_targets(inner, cl.targets, x, cl.span)
                ictx = ctx.sub(env=inner, current=ctx.current, in_value=ctx.in_value)
                if all(self.truth(self.evaluate(c, ictx), c.span) for c in cl.conds):
                    walk(k + 1, inner)

        walk(0, dict(ctx.env))
        return out

    def bind_targets(self, env, targets, x, span):
        """`for a, b in pairs`: unpack each item (a list) into the names."""
        if len(targets) <= 1:
            env[targets[0]] = x
            return
        if not isinstance(x, list) or len(x) != len(targets):
            n = len(x) if isinstance(x, list) else 1
            raise ResdslError("type", f"cannot unpack {type_name(x)} of {n} item(s) into {len(targets)} names",
                              span, help="each item must be a list of as many values, e.g. from zip(a, b)")
        for t, v in zip(targets, x):
            env[t] = v


def _arg_names(fn, args) -> list:
    """For each parameter of `fn`, the name its argument was written as at the call (`triu(length)`:
    "length"), or None for any other expression: the torch file writes a buffer's fn call with the
    block's own arguments where they are the names used."""
    out = {}
    pos = [a for a in args if a.name is None]
    for p, a in zip(fn.defn.params, pos):
        out[p.name] = a.value
    for a in args:
        if a.name is not None:
            out[a.name] = a.value
    return [out[p.name].id if isinstance(out.get(p.name), ast.Name) else None for p in fn.defn.params]
