"""Regions (a mixin of the Elaborator): `residual` with its shortcut and merge, `parallel`,
`repeat`, `loop n shared` and `{ ... }` groups, each elaborated in a scope of its own.
"""
from __future__ import annotations

from ..ir import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..frontend import ast
from ..ir import ops as O
from ..ir.graph import Value
from ..ir.shapes import Size
from . import traps
from .callees import is_block, is_op
from .context import MAX_REPEAT, Ctx, join
from .describe import show_value
from .values import BlockRef, MergeSpec, OpRef, Partial, type_name


class RegionMixin:
    """residual / parallel / repeat / loop / group regions and their merges (mixed into Elaborator)."""

    # ------------------------------------------------------------------ regions
    def region(self, e, ctx: Ctx, x: Value):
        with self.nested(e.span):
            return self._region(e, ctx, x)

    def _region(self, e, ctx: Ctx, x: Value):
        if isinstance(e, ast.Residual):
            return self.residual(e, ctx, x)
        if isinstance(e, ast.Parallel):
            return self.parallel(e, ctx, x)
        if isinstance(e, ast.Repeat):
            return self.repeat(e, ctx, x)
        return self.loop(e, ctx, x)

    def group(self, body: ast.Body, as_name, ctx, x):
        name = self.name_of(as_name, ctx, inline_ok=True)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("group", name or "group", prefix, body.span)
        g = ctx.sub(scope=scope, prefix=prefix, env=dict(ctx.env), current=x, in_value=x,
                    counters={} if name else None)
        with self.nested(body.span):
            out = self.body(body, g)
        traps.check_end(g, "this group")
        if g.outputs:
            # `output a = ..., b = ...` in a group: the group gives those tensors, and their names
            # hold for the code after it (the group's other names stay inside)
            for n, (_, v) in zip(g.out_binds, g.outputs):
                if n:
                    ctx.env[n] = v
            vals = tuple(v for _, v in g.outputs)
            out = vals[0] if len(vals) == 1 else vals
        return out

    def region_args(self, args, ctx, allowed, what, span):
        _, pos, kw = self.eval_args(args, ctx, ) if args else ([], [], {})
        if pos:
            raise ResdslError("type", f"`{what}` takes keyword arguments only", span,
                              help=f"e.g. {what}(merge=add)")
        for k in kw:
            if k not in allowed:
                hint = did_you_mean(k, allowed)
                raise ResdslError("type", f"`{what}` has no option `{k}`", span,
                                  help=hint or "options: " + ", ".join(allowed))
        return kw

    def residual(self, e: ast.Residual, ctx: Ctx, x: Value):
        # `pre = chain`: a shared pre-activation, computed once from `in`; it feeds the body and
        # the shortcut, while an identity skip still carries `in` itself (pre-act ResNet, WRN)
        pre = next((a for a in e.args if a.name == "pre"), None)
        args = tuple(a for a in e.args if a.name != "pre")
        if e.cond is not None:
            cctx = ctx.sub(env=dict(ctx.env), current=x, in_value=x)
            if not self.truth(self.evaluate(e.cond, cctx), e.cond.span):
                # `residual if c { body }` with c false: the body alone (after `pre`), in the same names
                p = self.pre_activation(pre, ctx, x, ctx.scope)
                return self.body(e.body, ctx.sub(env=dict(ctx.env), current=p, in_value=x))
        opts = self.region_args(args, ctx, ("merge", "drop_path", "pre"), "residual", e.span)
        merge = self.merge_spec(opts.get("merge", "add"), e.span)
        dp = opts.get("drop_path", 0.0)
        if not isinstance(dp, (int, float)) or isinstance(dp, bool) or not 0 <= dp < 1:
            raise ResdslError("type", f"drop_path must be a number in [0, 1), got {show_value(dp)}", e.span)
        as_name = self.name_of(e.as_name, ctx)
        scope = ctx.scope.child("residual", "residual", ctx.prefix, e.span, merge=merge.kind,
                                merge_arg=merge.arg, drop_path=float(dp))
        p = self.pre_activation(pre, ctx, x, scope)
        bctx = ctx.sub(scope=scope, env=dict(ctx.env), current=p, in_value=x)
        body_out = self.body(e.body, bctx)
        if not isinstance(body_out, Value):
            raise ResdslError("shape", "the residual body computes nothing", e.span)
        skip = x
        take = True
        if e.shortcut is not None:
            if e.shortcut_cond is not None:
                sc_ctx = ctx.sub(env=dict(ctx.env), current=x, in_value=x)
                take = self.truth(self.evaluate(e.shortcut_cond, sc_ctx), e.shortcut_cond.span)
            if take:
                sname = as_name or "shortcut"
                sprefix = join(ctx.prefix, sname)
                sscope = scope.child("shortcut", sname, sprefix, e.shortcut_span)
                sctx = ctx.sub(scope=sscope, prefix=sprefix, env=dict(ctx.env), current=p, in_value=x, counters={})
                # a named shortcut of one unnamed op or block gives it the name (`proj.weight`)
                skip = self.single_call(e.shortcut, sctx, p, sprefix, ops=True) if as_name else None
                if skip is None:
                    skip = self.body(e.shortcut, sctx)
        scope.info["has_shortcut"] = e.shortcut is not None and take
        mctx = ctx.sub(scope=scope, current=None)
        holder = as_name if e.shortcut is None else None
        out = self.merge(merge, body_out, skip, mctx, e.span, float(dp), holder, residual=True)
        scope.info["out"] = out
        return out

    def pre_activation(self, arg, ctx: Ctx, x: Value, scope):
        """The `pre = ...` chain of a residual applied to `x` in the enclosing names, or `x`."""
        if arg is None:
            return x
        chain = arg.value if isinstance(arg.value, ast.Chain) else \
            ast.Chain(arg.value.span, (ast.Link(arg.value.span, arg.value, None),))
        out = self.chain(chain, ctx.sub(scope=scope, env=dict(ctx.env), current=x, in_value=x), start=True)
        if not isinstance(out, Value):
            raise ResdslError("type", f"`pre` must give one tensor, got {type_name(out)}", arg.span,
                              help="e.g. residual(pre = bn as norm1 -> relu) { ... }")
        return out

    def merge_spec(self, v, span) -> MergeSpec:
        if isinstance(v, MergeSpec):
            return v
        if isinstance(v, str) and v in ("add", "concat", "mean", "mul", "learned", "rezero", "layer_scale"):
            return MergeSpec("learned" if v == "rezero" else v, None)
        if isinstance(v, OpRef) and v.name in ("add", "concat", "mean", "mul", "layer_scale"):
            return MergeSpec(v.name, None)
        if isinstance(v, Partial) and isinstance(v.callee, OpRef) and v.callee.name in ("scale", "layer_scale",
                                                                                          "concat"):
            arg = v.args[0] if v.args else next(iter(v.kwargs.values()), None)
            return MergeSpec(v.callee.name, arg)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return MergeSpec("scale", float(v))
        raise ResdslError("type", f"unknown merge {show_value(v)}", span,
                          help="merges: add, concat, mean, mul, scale(0.1), learned, layer_scale(1e-6)")

    def merge(self, m: MergeSpec, body, skip, ctx, span, dp=0.0, holder=None, residual=False):
        """out = merge(skip, transform(body)); transform = scale | learned | layer_scale, then drop_path."""
        def op(name, tensors, args=(), kwargs=None, as_=None, path=None):
            return self.apply_op(O.OPS[name], tensors, list(args), kwargs or {}, as_, ctx, span, path=path)

        if m.kind == "scale":
            body = op("scale", [body], [m.arg])
        elif m.kind == "learned":
            body = op("scalar_mul", [body], [0.0], path=join(ctx.prefix, holder) if holder else None)
        elif m.kind == "layer_scale":
            init = 1e-5 if m.arg is None else m.arg
            body = op("layer_scale", [body], [init], path=join(ctx.prefix, holder) if holder else None)
        if dp:
            body = op("drop_path", [body], [dp])
        kind = "add" if m.kind in ("scale", "learned", "layer_scale") else m.kind
        if kind in ("add", "mean", "mul") and not S.same_sizes(body.shape, skip.shape):
            if kind == "mul" and (not residual or _gates(body, skip)):
                pass  # a gate that broadcasts onto the skip, e.g. [N, C, 1, 1] * [N, C, H, W] (channel attention)
            else:
                raise ResdslError("shape", f"residual {kind} needs matching shapes", span,
                                  label=f"body gives {S.shape_str(body.shape)}, skip gives {S.shape_str(skip.shape)}",
                                  help=_residual_help(body, skip))
        if kind == "concat":
            dim = m.arg if isinstance(m.arg, int) else 1
            return op("concat", [skip, body], [], {"dim": dim})
        if kind == "mul":
            return op("mul", [body, skip])
        return op(kind, [body, skip])

    def parallel(self, e: ast.Parallel, ctx: Ctx, x: Value):
        opts = self.region_args(e.args, ctx, ("merge",), "parallel", e.span)
        merge = self.merge_spec(opts.get("merge", "add"), e.span)
        scope = ctx.scope.child("parallel", "parallel", ctx.prefix, e.span, merge=merge.kind)
        outs = []
        for i, br in enumerate(e.branches):
            bscope = scope.child("branch", f"branch{i}", ctx.prefix, br.span)
            bctx = ctx.sub(scope=bscope, env=dict(ctx.env), current=x, in_value=x)
            v = self.chain(br, bctx, start=True)
            if not isinstance(v, Value):
                raise ResdslError("type", f"parallel branch {i} gives no tensor", br.span)
            outs.append(v)
        if len(outs) == 1:
            return outs[0]
        mctx = ctx.sub(scope=scope)
        if merge.kind == "concat":
            dim = merge.arg if isinstance(merge.arg, int) else 1
            return self.apply_op(O.OPS["concat"], outs, [], {"dim": dim}, None, mctx, e.span)
        if merge.kind in ("add", "mean", "mul"):
            for i, v in enumerate(outs[1:], 1):
                if not S.same_sizes(v.shape, outs[0].shape):
                    raise ResdslError("shape", f"parallel {merge.kind} needs matching shapes", e.span,
                                      label=f"branch 0 gives {S.shape_str(outs[0].shape)}, branch {i} gives "
                                            f"{S.shape_str(v.shape)}",
                                      help="make the branches end with the same channels, or use merge=concat")
            if merge.kind == "mul" and len(outs) != 2:
                raise ResdslError("type", "merge=mul takes exactly two branches", e.span)
            return self.apply_op(O.OPS[merge.kind], outs, [], {}, None, mctx, e.span)
        raise ResdslError("type", f"parallel merge `{merge.kind}` is not supported", e.span,
                          help="parallel merges: add, concat, mean, mul")

    def count(self, expr, ctx, what):
        n = self.evaluate(expr, ctx)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ResdslError("type", f"`{what}` count must be a non-negative int, got {show_value(n)}", expr.span)
        if n > MAX_REPEAT:
            raise ResdslError("limit", f"`{what}` count {n} is over the limit of {MAX_REPEAT}", expr.span,
                              help="split the network or lower the count")
        return n

    def repeat(self, e: ast.Repeat, ctx: Ctx, x: Value):
        n = self.count(e.count, ctx, "repeat")
        name = self.name_of(e.as_name, ctx)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("repeat", name or "repeat", prefix, e.span, count=n)
        single = _single_block_call(e.body)
        cur = x
        for i in range(n):
            self.budget.step(e.span)
            ipath = join(prefix, str(i)) if name else prefix
            iscope = scope.child("iteration", str(i), ipath, e.span, index=i)
            env = dict(ctx.env)
            if e.index:
                env[e.index] = i
            ictx = ctx.sub(scope=iscope, prefix=ipath, env=env, current=cur, in_value=cur,
                           counters={} if name else None)
            if single is not None and name:
                out = self.single_call(e.body, ictx, cur, ipath)
                if out is not None:
                    cur = out
                    continue
            cur = self.body(e.body, ictx)
            if not isinstance(cur, Value):
                raise ResdslError("shape", "the repeat body computes nothing", e.span)
        scope.info["out"] = cur
        return cur

    def single_call(self, body: ast.Body, ctx: Ctx, x: Value, path: str, ops: bool = False):
        """A body that is one unnamed block call gives the block the enclosing name (`layer1.0`,
        a shortcut's `downsample`), as torchvision names a lone module; None for other bodies.
        With `ops`, one unnamed op with weights does too (`shortcut { conv1x1(c) } as proj`:
        `proj.weight`)."""
        link = _single_block_call(body)
        if link is None:
            return None
        callee = self.evaluate(link.expr.func if isinstance(link.expr, ast.Call) else link.expr, ctx)
        if not (isinstance(callee, (BlockRef, Partial)) and is_block(callee)) and \
                not (ops and isinstance(callee, (OpRef, Partial)) and is_op(callee)):
            return None
        tensors, args, kwargs = self.eval_args(link.expr.args, ctx, callee) if isinstance(
            link.expr, ast.Call) else ([], [], {})
        return self.apply(callee, [x] + tensors, args, kwargs, None, ctx, link.expr.span, path=path)

    def loop(self, e: ast.Loop, ctx: Ctx, x: Value):
        if not e.shared:
            raise ResdslError("syntax", "`loop` shares one set of weights and needs the word `shared`", e.span,
                              help="write `loop n shared { ... }`, or `repeat n { ... }` for separate weights")
        n = self.count(e.count, ctx, "loop")
        name = self.name_of(e.as_name, ctx)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("loop", name or "loop", prefix, e.span, count=n, shared=True)
        counters = {}
        cur = x
        for i in range(n):
            self.budget.step(e.span)
            iscope = scope.child("iteration", str(i), prefix, e.span, index=i)
            env = dict(ctx.env)
            if e.index:
                env[e.index] = i
            snapshot = dict(ctx.counters) if not name else {}
            ictx = ctx.sub(scope=iscope, prefix=prefix, env=env, current=cur, in_value=cur,
                           counters=dict(snapshot) if not name else dict(counters))
            if i > 0:
                self.sharing.append(prefix)
            try:
                cur = self.body(e.body, ictx)
            finally:
                if i > 0:
                    self.sharing.pop()
            if not isinstance(cur, Value):
                raise ResdslError("shape", "the loop body computes nothing", e.span)
            if i == n - 1 and not name:
                ctx.counters.update(ictx.counters)
        scope.info["out"] = cur
        return cur


# ---------------------------------------------------------------- helpers
def _residual_help(body, skip):
    if len(body.shape) >= 2 and len(skip.shape) == len(body.shape):
        c = body.shape[1].size
        stride = ""
        if len(body.shape) > 2:
            a, b = skip.shape[2].size, body.shape[2].size
            if a != b and isinstance(Size.lift(a) - b, (Size, int)):
                try:
                    r = Size.lift(a).truediv(1)
                    ratio = None
                    for s in (2, 4, 8):
                        if S.truediv(r, s) == b:
                            ratio = s
                    if ratio:
                        stride = f", stride={ratio}"
                except Exception:  # noqa: BLE001 - the help is best effort
                    stride = ""
        return f"add `shortcut {{ conv({c}, 1{stride}, bias=false) -> bn }}`, or use merge=concat"
    return "make the body end with the input's shape, or add a `shortcut { ... }`"


def _gates(body, skip) -> bool:
    """True when `body` broadcasts onto `skip` without changing its shape (residual merge=mul)."""
    try:
        out = O.broadcast(body.shape, skip.shape)
    except O.OpError:
        return False
    return S.same_sizes(out, skip.shape)


def _single_block_call(body: ast.Body):
    if len(body.stmts) != 1 or not isinstance(body.stmts[0], ast.ChainStmt):
        return None
    links = body.stmts[0].chain.links
    if len(links) != 1 or links[0].as_name is not None:
        return None
    if isinstance(links[0].expr, (ast.Call, ast.Name)):
        return links[0]
    return None
